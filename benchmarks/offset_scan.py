"""A stored audio offset on leave-one-corpus-out models, fitted after training: what it does to emotion.

For each fold of a ``benchmarks/loco.py`` run folder (a model trained without one corpus), the offset
``scale * mean(E)`` is fitted exactly as a training run's ``audio_offset`` section fits it
(:func:`paraspeechclap.training.offset_fit.fit_audio_offset`, over the fold's own cached training clips
that carry ``--require``), and the fold's model scores, with and without it:

- the left-out corpus (every clip: the corpus the fold never heard), plain single-clip 4- and 8-class
  emotion UAR over the classes present, and the recall of "saddened";
- the fold's real dev clips (unseen speakers of the corpora it trained on), the same metrics: the
  in-corpus side, and the only side a scale may be chosen on.

The weights are the fold's, unchanged: only the offset differs, so each row is the offset's own effect.
Needs the folds' feature cache (the LOCO run filled it) and the shared data.

    python benchmarks/offset_scan.py --runs runs/loco-lite-tags-v3 --require emotion --require none \
        --scales 0.25,0.5,0.75,1.0 --json benchmarks/results/offset_scan.json
    python benchmarks/offset_scan.py --runs runs/loco-lite-tags-v3 --require emotion --within emotion8 \
        --json benchmarks/results/offset_scan_within.json          # the shipped form (v18), by scale

``--write-model DIR`` instead writes a trained model (``--weights``, default the shipped model's) with the offset
that ``--config``'s ``audio_offset`` section fits, as a candidate for ``benchmarks/quality.py --model DIR``
(training that recipe gives the same weights and offset: the offset never enters the loss):

    python benchmarks/offset_scan.py --write-model runs/v17-offset --config configs/train/experiments/lite-offset.yaml
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_arg, json_path, mean_present, write_results  # noqa: E402

SETS = ("emotion", "emotion8")


def fitted_trainer(config: str, weights: Path, overrides: list[str]) -> Any:
    """A trainer of ``config`` (its data, its feature cache) holding ``weights``, its offset fitted."""
    from safetensors.torch import load_file

    import paraspeechclap.distributed as dist
    from paraspeechclap.training.config import load_config
    from paraspeechclap.training.loop import Trainer

    trainer = Trainer(load_config(config, ["train.progress=false", *overrides]), dist.init_distributed())
    loaded = trainer.model.load_state_dict(load_file(str(weights)), strict=False)
    heads = [k for k in loaded.missing_keys if not k.startswith(("audio_branch.base", "text_branch.base"))]
    if loaded.unexpected_keys or set(heads) - set(trainer.model.OFFSET_BUFFERS):
        raise SystemExit(f"{weights}: not a model of {config} (unexpected {loaded.unexpected_keys}, missing {heads})")
    trainer._fit_offset()
    return trainer


def fold_fit(fold: Path, require: list[str], temperature: float,
             within: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """The fold model's reference mean (``(D,)``, its training clips carrying ``require``, restricted to the
    class directions of the ``within`` sets) and, when ``require`` leaves other clips, the gate between them
    (``(D + 1,)``, ``temperature``)."""
    gate = f", gate: true, gate_temperature: {temperature}" if require else ""
    sets = [f"train.output_dir={fold / 'offset-scan'}",
            f"audio_offset={{scale: 1.0, require: {require}{gate}, within: {within}}}"]
    trainer = fitted_trainer(str(fold / "config.yaml"), fold / "final" / "model.safetensors", sets)
    g = trainer.model.audio_offset_gate
    return trainer.model.audio_offset.numpy().copy(), None if g is None else g.numpy().copy()


def emotion_scores(model: Any, emb: np.ndarray, rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """4- and 8-class UAR over the classes present, the recall of "saddened" (4-class), and the audio-to-text
    R@1 of the clips' own captions (``text_description``) among the side's unique captions: what the offset
    does to caption retrieval, where a class prior the clips share (in-corpus) helps."""
    from paraspeechclap.evaluation.classification import score_attribute_set
    from paraspeechclap.evaluation.retrieval import dedupe_captions, retrieval_metrics

    unique, gt = dedupe_captions([r["text_description"] for r in rows])
    out: dict[str, float | None] = {
        "caption/R@1": float(retrieval_metrics(emb @ model.embed_text(unique).T, gt)["audio_to_text"]["R@1"])}
    for name in SETS:
        s = score_attribute_set(model, emb, rows, name)
        out[f"{name}/uar"] = None if s is None else s["uar_present"]
        if name == "emotion" and s is not None:
            conf, i = np.asarray(s["confusion"]), s["labels"].index("saddened")
            out["recall_sad"] = float(conf[i, i] / conf[i].sum()) if conf[i].sum() else None
    return out


def scan_fold(fold: Path, requires: list[list[str]], scales: list[float], temperature: float,
              within: list[str]) -> dict[str, Any]:
    from paraspeechclap import load_model
    from paraspeechclap.data.splits import load_shared_manifest
    from paraspeechclap.evaluation.runner import embed_rows
    from paraspeechclap.offset import apply_offset, gate_weights

    corpus = fold.name
    model = load_model(str(fold / "final"), precision="fp32")
    sides = {"left_out": load_shared_manifest(batches="all").filter(lambda r: r["source"] == corpus),
             "dev": load_shared_manifest(batches="all", split="dev").filter(lambda r: r["source"] != corpus)}
    emb = {k: embed_rows(model, m, range(len(m)), batch_size=16) for k, m in sides.items()}
    rows = {k: list(m) for k, m in sides.items()}
    out: dict[str, Any] = {"none": {k: emotion_scores(model, emb[k], rows[k]) for k in sides}}
    for req in requires:
        mean, gate = fold_fit(fold, req, temperature, within)
        for gated in ([False, True] if gate is not None else [False]):
            for s in scales:
                name = variant(req, s, gated, within)
                out[name] = {k: emotion_scores(model, apply_offset(emb[k], s * mean, gate if gated else None), rows[k])
                             for k in sides}
                out[name]["offset_norm"] = float(np.linalg.norm(s * mean))
                if gated:
                    out[name]["left_out"]["gate_mean"] = float(np.mean(gate_weights(emb["left_out"], gate)))
    return out


def variant(require: list[str], scale: float, gated: bool = False, within: list[str] | None = None) -> str:
    return (f"require={'+'.join(require) or 'none'}/scale={scale:g}" + ("/gated" if gated else "")
            + (f"/within={'+'.join(within)}" if within else ""))


def summarize(per_fold: dict[str, Any]) -> dict[str, Any]:
    """Mean over the folds of every metric, per variant and side (and the left-out minimum 4-class UAR)."""
    out: dict[str, Any] = {}
    for v in next(iter(per_fold.values())):
        out[v] = {}
        for side in ("left_out", "dev"):
            keys = per_fold[next(iter(per_fold))][v][side]
            out[v][side] = {k: mean_present([per_fold[f][v][side][k] for f in per_fold]) for k in keys}
        out[v]["left_out"]["emotion/uar_min"] = min(per_fold[f][v]["left_out"]["emotion/uar"] for f in per_fold)
    return out


def write_model(args: argparse.Namespace) -> int:
    """A trained model's weights with an offset fitted on its recipe's training clips (no training step)."""
    from paraspeechclap.training.loop import save_model_dir

    out = Path(args.write_model)
    trainer = fitted_trainer(args.config, Path(args.weights), [f"train.output_dir={out}.trainer", *args.set])
    save_model_dir(trainer.model, out, {"weights": str(args.weights), "config": args.config,
                                        "audio_offset": trainer.offset_info})
    print(f"{out}: offset {trainer.offset_info}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", help="a benchmarks/loco.py --runs folder (one sub-folder per fold)")
    ap.add_argument("--require", action="append", default=None,
                    help="reference rows' required fields, comma-separated, or 'none' (repeatable; default emotion)")
    ap.add_argument("--scales", default="0.25,0.5,0.75,1.0")
    ap.add_argument("--gate-temperature", type=float, default=0.05,
                    help="a --require that leaves other training clips is also scored gated (audio_offset.gate)")
    ap.add_argument("--within", default="", help="attribute sets the offset is restricted to (audio_offset.within), "
                    "comma-separated (default: the whole mean)")
    add_json_arg(ap, "offset_scan.json")
    ap.add_argument("--write-model", metavar="DIR", default=None,
                    help="instead: write --weights with the offset of --config (its audio_offset section) to DIR")
    ap.add_argument("--config", default="configs/train/experiments/lite-offset.yaml")
    ap.add_argument("--weights", default="src/paraspeechclap/pretrained/lite/model.safetensors")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides of --config")
    args = ap.parse_args()
    if args.write_model:
        return write_model(args)
    if not args.runs:
        ap.error("--runs is required (or --write-model)")
    t0 = time.perf_counter()
    requires = [[] if r == "none" else r.split(",") for r in (args.require or ["emotion"])]
    scales = [float(s) for s in args.scales.split(",")]
    folds = sorted(p for p in Path(args.runs).iterdir() if (p / "final").is_dir())
    within = [w for w in args.within.split(",") if w]
    per_fold = {f.name: scan_fold(f, requires, scales, args.gate_temperature, within) for f in folds}
    res = {"runs": args.runs, "folds": [f.name for f in folds], "requires": requires, "scales": scales,
           "within": within,
           "gate_temperature": args.gate_temperature,
           "per_fold": per_fold, "summary": summarize(per_fold), "wall_s": round(time.perf_counter() - t0, 1)}
    write_results(json_path(args), res)
    head = (f"{'left-out 4-cl mean/min':>22s} {'sad':>6s} {'8-cl':>6s} | {'dev 4-cl':>8s} {'dev 8-cl':>8s} "
            f"{'dev R@1':>8s}")
    print(f"{'variant':32s} {head}")
    for v, s in res["summary"].items():
        lo, dv = s["left_out"], s["dev"]
        print(f"{v:32s} {lo['emotion/uar']:>14.3f} / {lo['emotion/uar_min']:.3f} {lo['recall_sad']:>6.3f} "
              f"{lo['emotion8/uar']:>6.3f} | {dv['emotion/uar']:>8.3f} {dv['emotion8/uar']:>8.3f} "
              f"{dv['caption/R@1']:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
