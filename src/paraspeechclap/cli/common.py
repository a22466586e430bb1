"""Helpers shared by the CLI subcommands: model flags, JSON/table output, atomic outputs."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from ..model import ParaSpeechCLAP


#: ``--precision`` help of most commands; ``evaluate`` passes its own (its default depends on the model).
PRECISION_HELP = ("auto (default): bf16 where the CPU/GPU computes it natively (AVX512-BF16, AMX, recent GPUs), "
                  "else fp32; fp32 for exact reference numbers")


def add_model_args(parser: argparse.ArgumentParser, precision_default: str | None = "auto",
                   precision_help: str = PRECISION_HELP) -> None:
    """The model flags every inference command accepts.

    Args:
        precision_default: ``--precision`` when not given; None lets the command tell an explicit
            ``--precision auto`` from no flag at all (``evaluate`` picks fp32 for official checkpoints).
    """
    g = parser.add_argument_group("model")
    g.add_argument("--model", default=None, metavar="M",
                   help="'lite' (default: the embedded model), a saved-model directory, a released model name "
                        "(intrinsic, situational, combined) or an official .pth.tar checkpoint")
    g.add_argument("--audio-encoder", default=None, metavar="A",
                   help="speech backbone of an official checkpoint (hub id, local directory or registry type; "
                        "default microsoft/wavlm-large)")
    g.add_argument("--text-encoder", default=None, metavar="T",
                   help="text backbone of an official checkpoint (default "
                        "ibm-granite/granite-embedding-278m-multilingual)")
    g.add_argument("--pooling", default="masked_mean", choices=["masked_mean", "mean"],
                   help="speech pooling of official checkpoints (mean = the older unmasked mean)")
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: auto")
    g.add_argument("--precision", default=precision_default, choices=["auto", "fp32", "bf16", "int8"],
                   help=precision_help)
    g.add_argument("--batch-size", type=positive_int, default=16, metavar="B", help="clips per batch (default 16)")


def add_executor_args(parser: argparse.ArgumentParser, stage: str = "embed") -> None:
    """``--executor`` and its Ray settings (``--address``, ``--workers``, ``--worker-threads``)."""
    g = parser.add_argument_group("executor")
    g.add_argument("--executor", default="local", choices=["local", "ray"],
                   help=f"who runs the {stage} stage: local (default: this process, no Ray needed) or ray (a Ray "
                        "Data pipeline: CPU tasks decode, an actor pool embeds; pip install 'paraspeechclap[ray]')")
    g.add_argument("--address", default=None, metavar="ADDR",
                   help="--executor ray: the cluster to join ('auto', 'host:6379' or 'ray://host:10001'; default: a "
                        "local Ray instance on this machine). Outputs and audio must be on storage every node sees")
    g.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="--executor ray: embedding actors, one model each (default 1; one per GPU or machine)")
    g.add_argument("--worker-threads", type=positive_int, default=None, metavar="T",
                   help="--executor ray: torch threads per embedding actor (default: all CPUs of its machine, for "
                        "one actor per machine; lower it when several actors share one)")


def executor_options(args: argparse.Namespace) -> dict[str, Any]:
    """The executor's settings from the flags (refused for ``local``, which has none)."""
    from ..errors import InputError

    if args.executor != "ray" and (args.address or args.workers != 1 or args.worker_threads):
        raise InputError("--address, --workers and --worker-threads are for --executor ray")
    return {"address": args.address, "workers": args.workers, "threads": args.worker_threads}


@contextmanager
def model_and_executor(args: argparse.Namespace) -> Iterator["ParaSpeechCLAP"]:
    """The flags' model, with ``--executor``'s runtime held for the block (:func:`~paraspeechclap.annotate.
    executors.executor_session`). Both take seconds (Ray starts its processes; the model imports and
    loads its encoders), so the model loads in a thread while this one starts Ray, which wants the main
    thread for its signal handlers. Every command that uses this runs one executor job, after which
    the runtime stops in the background while the command labels or writes."""
    options = executor_options(args)
    if args.executor == "local":
        yield model_from_args(args)
        return
    from concurrent.futures import ThreadPoolExecutor

    from ..annotate.executors import executor_session

    session = executor_session(args.executor, options, jobs=1)  # a missing extra fails here, before any loading
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(model_from_args, args)
        with session:
            yield future.result()


def model_load_spec(args: argparse.Namespace, model: "ParaSpeechCLAP") -> dict[str, Any]:
    """``load_model`` keywords that load the flags' model again in a worker process (paths made absolute)."""
    from pathlib import Path

    path = str(Path(args.model).resolve()) if args.model and Path(args.model).exists() else args.model
    return {"name_or_path": path, "audio_encoder": args.audio_encoder, "text_encoder": args.text_encoder,
            "device": args.device, "precision": model.precision, "pooling": args.pooling}


def embedder_from_args(args: argparse.Namespace, model: "ParaSpeechCLAP") -> Any:
    """The model itself (``--executor local``), or an :class:`~paraspeechclap.annotate.embedder.ExecutorEmbedder`
    that embeds audio files through the executor the flags name."""
    options = executor_options(args)
    if args.executor == "local":
        return model
    from ..annotate.embedder import ExecutorEmbedder

    return ExecutorEmbedder(model, model_load_spec(args, model), args.executor, options)


def add_manifest_source_args(parser: argparse.ArgumentParser, root_note: str = "") -> None:
    """``--split`` and ``--audio-root``: where a manifest's rows and audio come from."""
    parser.add_argument("--split", default=None, metavar="S", help="split of a Hugging Face dataset")
    parser.add_argument("--audio-root", default=None, metavar="DIR",
                        help="audio is at DIR/<source>/<relative_audio_path> (default: the manifest's directory)"
                             + root_note)


def add_center_args(parser: argparse.ArgumentParser, speakers: bool = True, speaker_field: bool = True,
                    speaker_help: str = "needs --manifest with speaker ids", centred_head: bool = True) -> None:
    """``--center``, ``--speaker-field``, ``--reference`` and ``--no-centred-head``: centring of the audio embeddings
    (:mod:`paraspeechclap.centering`). ``speakers=False`` where items carry no speaker ids;
    ``speaker_field=False`` where the ids come from elsewhere (an index stores them); ``centred_head=False`` where
    stored embeddings are centred (always through the main head), so the model's centred head has no say."""
    from ..centering import CENTER_MODES

    g = parser.add_argument_group("centring (subtract a reference mean from the audio embeddings)")
    modes = CENTER_MODES if speakers else tuple(m for m in CENTER_MODES if m != "speaker")
    g.add_argument("--center", default="none", choices=modes,
                   help="none (default: a clip's result does not depend on the others), collection (the mean of "
                        "all clips)" + (f", speaker (each speaker's mean; {speaker_help})" if speakers else ""))
    if speakers and speaker_field:
        g.add_argument("--speaker-field", default="speaker", metavar="F",
                       help="manifest field with the speaker id (default: speaker)")
    g.add_argument("--reference", nargs="+", default=None, metavar="CLIP",
                   help="centre on the mean of these clips instead (e.g. neutral speech of the same speaker or "
                        "room); with --center speaker, for speakers with a single clip")
    if speakers:
        g.add_argument("--speaker-prior", type=non_negative_float, default=None, metavar="K",
                       help="--center speaker: shrink each speaker's mean towards the collection's by K clips "
                            "(default: the model's speaker_prior, 4 for the default model; 0: each speaker's own "
                            "mean). A speaker of few clips in one emotion then keeps more of it")
    if speakers and centred_head:
        g.add_argument("--no-centred-head", action="store_true",
                       help="--center speaker through the model's main audio head even if it has a centred head "
                            "(fit-centred-head): l2(x - mean) of the plain embeddings, as models without one centre")


def center_kwargs(args: argparse.Namespace, speakers: Sequence[Any] | None = None) -> dict[str, Any]:
    """The ``center``/``speakers``/``reference`` keywords of the model's audio methods from the flags."""
    return {"center": args.center, "speakers": speakers if args.center == "speaker" else None,
            "reference": args.reference}


def centering_spec(args: argparse.Namespace) -> dict[str, Any]:
    """The ``centering`` mapping of :func:`paraspeechclap.evaluation.runner.embed_rows` from the flags."""
    return {"center": args.center, "speaker_field": args.speaker_field, "reference": args.reference}


def center_json(args: argparse.Namespace, model: Any = None, head: str | None = None) -> dict[str, Any]:
    """The centring a run used, as recorded in ``--json`` outputs and reports: ``head`` (default: the one
    ``model`` centres with, :func:`paraspeechclap.centering.head_for`) and, for speaker centring, the model's
    ``speaker_prior``."""
    from ..centering import head_for

    speaker = args.center == "speaker"
    return {"mode": args.center, "speaker_field": getattr(args, "speaker_field", None) if speaker else None,
            "reference": list(args.reference or []), "head": head or head_for(args.center, model),
            "speaker_prior": model.config.speaker_prior if speaker and model is not None else None}


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def finite_float(text: str) -> float:
    value = float(text)
    if not abs(value) < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def model_from_args(args: argparse.Namespace, precision: str | None = None) -> "ParaSpeechCLAP":
    """Load the model the flags name, in ``precision`` (default: ``--precision``, else ``auto``)."""
    from ..pretrained import load_model

    model = load_model(args.model, audio_encoder=args.audio_encoder, text_encoder=args.text_encoder,
                       device=args.device, precision=precision or args.precision or "auto", pooling=args.pooling)
    if getattr(args, "no_centred_head", False):  # --no-centred-head: speaker centring as without a head
        model.set_centred_head(None)
    if getattr(args, "speaker_prior", None) is not None:
        model.set_speaker_prior(args.speaker_prior)
    return model


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain aligned text table on stdout."""
    cells = [[str(h) for h in header]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for n, r in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
