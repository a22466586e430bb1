"""What the benchmark scripts share: where results go, how a run is recorded, zero-shot scoring.

Every script writes its results as JSON to ``benchmarks/results/<name>.json`` by default (``--json
PATH`` elsewhere), atomically, with a ``meta`` block that records the command, the time, the
machine and the commit, so ``benchmarks/report.py`` can rebuild the tables of README.md and
MODEL_CARD.md from the committed files and say where each number came from.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def add_json_arg(ap: argparse.ArgumentParser, default_name: str) -> None:
    """``--json PATH`` (alias ``--out``; default ``benchmarks/results/<default_name>``, where ``{split}``
    etc. are filled from the parsed arguments by :func:`json_path`)."""
    ap.add_argument("--json", "--out", dest="json", default=None, metavar="OUT",
                    help=f"where the results go (default: benchmarks/results/{default_name})")
    ap.set_defaults(_json_default=default_name)


def add_timing_args(ap: argparse.ArgumentParser) -> None:
    """``--clips`` (16), ``--repeats`` (5) and ``--threads`` (2): the one-clip-at-a-time speed benchmarks' settings."""
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)


def json_path(args: argparse.Namespace, **fields: Any) -> Path:
    """The results file of a run: ``--json``, or the default name filled from ``args`` and ``fields``
    (e.g. the resolved precision)."""
    if args.json:
        return Path(args.json)
    return RESULTS / args._json_default.format(**{**vars(args), **fields})


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    """HEAD's short hash, with ``-dirty`` when tracked files differ from it outside ``benchmarks/results/``
    (results written by earlier benchmarks of the same regeneration do not make a run dirty)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                              timeout=10).stdout.strip()

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results")
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + ("-dirty" if changed else "")) or None


def run_meta() -> dict[str, Any]:
    """The command, UTC time, machine (CPU, cores, native bf16) and commit of this run."""
    from paraspeechclap.inference import cpu_has_bf16

    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(REPO)
    except ValueError:
        pass
    return {
        "command": shlex.join(["python", str(script), *sys.argv[1:]]),
        "utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": {"cpu": _cpu_name(), "cores": os.cpu_count(), "native_bf16": cpu_has_bf16()},
        "commit": _git_commit(),
    }


def write_results(path: str | os.PathLike, data: dict[str, Any]) -> Path:
    """Write ``data`` plus ``meta`` (:func:`run_meta`) atomically; returns the path."""
    from paraspeechclap.atomic import atomic_write_json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {**data, "meta": run_meta()})
    print(f"results: {path}", file=sys.stderr)
    return path


def mean_present(values: Sequence[float | None]) -> float | None:
    """The mean of the values that are not None (a fold or corpus without the metric does not count as 0)."""
    got = [v for v in values if v is not None]
    return float(np.mean(got)) if got else None


def row_speakers(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Speaker id of each row; a row without one is its corpus's unknown speaker (``<source>/?``)."""
    return [str(r.get("speaker") or f"{r['source']}/?") for r in rows]


def group_centred(emb: np.ndarray, groups: Sequence[Any]) -> np.ndarray:
    """``(N, D)`` ``emb`` with each row centred on its group's mean (``center="speaker"`` with the groups as
    speakers); a group of one row is centred on the mean of all rows."""
    from paraspeechclap.centering import center_embeddings

    return center_embeddings(emb, "speaker", list(groups), emb)[0]


#: where :func:`pooled_table` keeps the pooled features of every shared clip
POOLED_CACHE = Path.home() / ".cache" / "paraspeechclap" / "centred_head.npz"


def backbone_key(model: Any) -> str:
    """What makes two models pool a clip alike: the speech backbone's spec, when the backbone is frozen (its
    head-side transforms have no weights); "" for a model that trains its backbone (no two pool alike)."""
    import json

    return "" if model.config.audio_trainable != [] else json.dumps(model.config.audio_encoder, sort_keys=True)


def pooled_table(cache: Path = POOLED_CACHE, model: Any = None) -> dict[str, Any]:
    """Every clip of the shared real speech (all batches): its row and its ``(H,)`` backbone-pooled features
    (:meth:`pool_audio`, fp32, by ``model``, default the embedded one), cached in ``cache`` with the backbone it
    was pooled by (:func:`backbone_key`), so any model with the same frozen backbone reuses it."""
    import json

    from paraspeechclap import load_model
    from paraspeechclap.data.splits import load_shared_manifest

    every = load_shared_manifest(batches="all")
    rows = list(every)
    keys = json.dumps([r.get("audio") for r in rows])
    model = model or load_model(precision="fp32")
    backbone = backbone_key(model)
    paths = [str(every.audio_path(i)) for i in range(len(every))]
    if cache.is_file() and backbone:
        data = np.load(cache, allow_pickle=False)
        if str(data["keys"]) == keys and "backbone" in data and str(data["backbone"]) == backbone:
            return {"rows": rows, "paths": paths, "pooled": data["pooled"], "backbone": backbone}
    pooled = model.pool_audio(paths, progress=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.stem + ".tmp.npz")
    np.savez(tmp, pooled=pooled, keys=keys, backbone=backbone)
    os.replace(tmp, cache)
    return {"rows": rows, "paths": paths, "pooled": pooled, "backbone": backbone}


def pooled_rows(model: Any, table: dict[str, Any], idx: Sequence[int]) -> np.ndarray:
    """``(len(idx), H)`` pooled features of ``table``'s rows ``idx`` as ``model`` pools them: from the table when
    the model has the backbone it was pooled by, else pooled again by ``model``."""
    if table["backbone"] and backbone_key(model) == table["backbone"]:
        return table["pooled"][list(idx)]
    return model.pool_audio([table["paths"][i] for i in idx])


def model_fields(model: Any) -> dict[str, Any]:
    """What identifies the scored model in a results file (with a centred head, its checksum too, and a speaker
    prior: both change speaker-centred scores only)."""
    head = getattr(model, "centred_head_checksum", "")
    prior = getattr(getattr(model, "config", None), "speaker_prior", 0.0)
    return {"model": model.model_id, "checksum": model.checksum, "precision": model.precision,
            **({"centred_head_checksum": head} if head else {}), **({"speaker_prior": prior} if prior else {})}


def attribute_scores(model: Any, audio: np.ndarray, rows: Sequence[dict[str, Any]], set_name: str,
                     ensemble: bool = True) -> dict[str, Any] | None:
    """:func:`paraspeechclap.evaluation.classification.score_attribute_set` without the per-clip
    predictions (the results files keep the confusion matrix instead)."""
    from paraspeechclap.evaluation.classification import score_attribute_set

    m = score_attribute_set(model, audio, rows, set_name, ensemble)
    if m is not None:
        m.pop("predicted")
    return m
