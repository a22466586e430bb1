"""Where in the audio head to centre: speaker- and collection-centred scores on leave-one-corpus-out folds.

``center="speaker"`` (:mod:`paraspeechclap.centering`) subtracts a speaker's mean from each clip's
*normalised embedding*. The projection (:class:`paraspeechclap.projection.Projection`) ends in a GELU branch
and a LayerNorm, and centring does not commute with them: removing a speaker's mean there is not removing it
from what the backbone heard. Its first linear layer (``linear1``) is the last point where it does commute:
centring ``linear1``'s output is exactly centring the backbone's features. This scores, on each fold model
of ``loco.py --runs`` folders (one model per left-out corpus, fp32), the left-out corpus's 4- and 8-class
emotion UAR with the clip moved off its group's mean at

- ``embedding``: the normalised embedding (what ``center=`` does today);
- ``linear1``: the output of the projection's first linear layer, then the rest of the projection and the
  normalisation (the same mean, no label read).

::

    python benchmarks/centre_points.py --runs v18=runs/loco-lite-speaker-centred-w01 \\
        linear1=runs/loco-lite-centred-linear1          # -> benchmarks/results/centre_points.json

Summary keys follow ``loco.json`` (``uar4_mean``, ``uar4_min``, ``uar8_mean``, ``sad``), over the corpora given,
plus ``uar4_mean_mixed``: the 4-class mean without the corpora where most speakers are heard in one emotion
(URDU: centring a speaker then removes the emotion too; ``loco_posthoc.py``'s ``speaker_structure``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_arg, json_path, row_speakers, write_results  # noqa: E402
from loco_posthoc import SAD, SETS, SUMMARY_CORPORA, parse_runs, score, summarize  # noqa: E402

POINTS = ("embedding", "linear1")
MODES = ("plain", "speaker", "collection")
#: corpora where most speakers are heard in one 4-class emotion only (loco_posthoc.json: URDU, 26 of 29)
ONE_LABEL_CORPORA = ("urdu",)


def centred_at(projection: Any, pooled: np.ndarray, point: str, mode: str, speakers: Sequence[str]) -> np.ndarray:
    """``(N, H)`` backbone-pooled rows -> ``(N, D)`` normalised embeddings, centred (``mode``) at ``point``.

    ``embedding``: ``l2(l2(P(x)) - mean)``; ``linear1``: ``l2(finish(linear1(x) - mean))``, ``P`` = ``projection``
    in eval mode, means over each speaker's rows (``speaker``) or all rows (``collection``).
    """
    import torch

    from paraspeechclap.centering import center_embeddings, l2_rows

    x = torch.as_tensor(pooled, dtype=torch.float32)
    with torch.no_grad():
        if point == "embedding" or mode == "plain":
            emb = l2_rows(projection(x).numpy())
            return emb if mode == "plain" else center_embeddings(emb, mode, list(speakers))[0]
        e1 = projection.linear1(x).double().numpy()
        moved, _ = center_embeddings(e1, mode, list(speakers), normalize=False)
        return l2_rows(projection.finish(torch.as_tensor(moved, dtype=torch.float32)).numpy())


def fold_scores(run: Path, corpus: str, every: Any) -> dict[str, Any]:
    """``{point: {mode: (uar4, recall4, uar8)}}`` of ``run``'s fold model on its left-out corpus."""
    from paraspeechclap import load_model
    from paraspeechclap.data.attributes import get_attribute_set
    from paraspeechclap.evaluation.classification import attribute_set_scores

    model = load_model(str(run / corpus / "final"), precision="fp32")
    manifest = every.filter(lambda r: r["source"] == corpus)
    rows = list(manifest)
    pooled = model.pool_audio([str(manifest.audio_path(i)) for i in range(len(manifest))])
    speakers = row_speakers(rows)
    got: dict[str, Any] = {}
    for n, name in SETS.items():
        aset = get_attribute_set(name)
        got[f"gold{n}"], got[f"candidates{n}"] = [aset.gold(r) for r in rows], list(aset.candidates)
    out: dict[str, Any] = {}
    for point in POINTS:
        out[point] = {}
        for mode in MODES:
            emb = centred_at(model.audio_projection.eval(), pooled, point, mode, speakers)
            s4, s8 = (attribute_set_scores(model, emb, get_attribute_set(SETS[n])) for n in (4, 8))
            out[point][mode] = score(got, s4, s8)
    return out


def summary_of(per_corpus: dict[str, Any]) -> dict[str, Any]:
    """``loco_posthoc.summarize`` of one point and mode, plus the 4-class mean over the mixed-speaker corpora."""
    s = summarize(per_corpus)
    mixed = [v[0] for c, v in per_corpus.items() if c not in ONE_LABEL_CORPORA]
    s["uar4_mean_mixed"] = float(np.mean(mixed)) if mixed else None
    return s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", nargs="+", required=True, metavar="NAME=DIR",
                    help="loco.py --runs folders (one fold model per left-out corpus)")
    ap.add_argument("--corpora", default=",".join(SUMMARY_CORPORA))
    add_json_arg(ap, "centre_points.json")
    args = ap.parse_args()
    return run(parse_runs(ap, args.runs), args.corpora.split(","), json_path(args))


def run(runs: dict[str, Path], corpora: list[str], out: Path) -> int:
    from paraspeechclap.data.splits import load_shared_manifest

    t0, every = time.time(), load_shared_manifest(batches="all")
    results: dict[str, Any] = {"corpora": corpora, "points": list(POINTS), "precision": "fp32", "runs": {}}
    for name, folder in runs.items():
        per = {c: fold_scores(folder, c, every) for c in corpora}
        results["runs"][name] = {
            "dir": str(folder),
            "summary": {p: {m: summary_of({c: per[c][p][m] for c in corpora}) for m in MODES} for p in POINTS},
            "per_corpus": {c: {p: {m: {"uar4": v[0], "uar8": v[2], "sad": v[1].get(SAD)}
                                   for m, v in per[c][p].items()} for p in POINTS} for c in corpora},
        }
    results["wall_s"] = round(time.time() - t0, 1)
    write_results(out, results)
    print_table(results)
    return 0


def print_table(results: dict[str, Any], column: str = "centred at") -> None:
    """A Markdown table of every run's summary, ``{column value: {mode: summary}}`` (also ``centred_head.py``'s)."""
    print(f"| run | {column} | mode | 4-class mean / min | mixed-speaker corpora | 8-class | recall sad |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results["runs"].items():
        for p, modes in r["summary"].items():
            for m, s in modes.items():
                print(f"| {name} | {p} | {m} | {s['uar4_mean']:.3f} / {s['uar4_min']:.3f} | "
                      f"{s['uar4_mean_mixed']:.3f} | {s['uar8_mean']:.3f} | {s['sad']:.3f} |")


if __name__ == "__main__":
    raise SystemExit(main())
