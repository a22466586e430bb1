"""Fixes applied after training, measured on leave-one-corpus-out folds already trained by ``benchmarks/loco.py``.

Issue 18 asks for plain (single-clip) scores that transfer to corpora the model never heard. Before
training yet another recipe, this measures three things that need no training, on the folds of the
recipes named with ``--runs NAME=DIR`` (each DIR a ``loco.py --runs`` folder, one model per left-out corpus):

- ``class_bias``: one additive bias per 4-class candidate (a fixed prior correction that could ship with
  the model and keep a clip's result independent of its batch), fitted on the *other* left-out corpora's
  plain scores by coordinate ascent of their mean UAR over a grid, then applied to the left-out corpus
  (nested leave-one-corpus-out). It helps only if the models' errors on unseen corpora share a direction.
- ``ensembles``: the mean of K fold models' cosine scores for the same corpus (K seeds or recipes over
  the same frozen features). That mean is the cosine of the K embeddings concatenated and each scaled by
  1/sqrt(K), so it is what a K-head model would score; each member is speaker-centred on its own.
- ``speaker_structure``: how many of each corpus's speakers have clips of one 4-class label only. Speaker
  centring removes what a speaker always does, so on such a corpus it removes the emotion too (it never
  reads labels; this report does, to explain the numbers). The speaker-centred summary is also given
  without the corpora where most speakers have one label.

    python benchmarks/loco_posthoc.py --runs v18=runs/loco-lite-speaker-centred-w01 \\
        v18-s1234=runs/loco-lite-speaker-centred-w01-s1234 w025=runs/loco-lite-speaker-centred
                                                        # -> benchmarks/results/loco_posthoc.json

Summary keys follow ``loco.json``: ``uar4_mean``, ``uar4_min``, ``uar8_mean``, ``sad`` (recall of the
4-class "saddened" candidate), over the corpora given (default: loco.json's five summary corpora).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_arg, group_centred, json_path, mean_present, row_speakers, write_results  # noqa: E402

SUMMARY_CORPORA = ["ased", "emodb", "emovo", "savee", "urdu"]
SETS = {4: "emotion", 8: "emotion8"}
SAD = "saddened"
#: bias grid, in cosine units (the 4 candidates' cosines spread about 0.12 around their means)
BIAS_GRID = np.round(np.arange(-0.10, 0.1001, 0.005), 3)


# -- pure scoring -----------------------------------------------------------------------------------------
def uar_and_recall(scores: np.ndarray, gold: Sequence[str | None], candidates: Sequence[str]) -> tuple[float, dict]:
    """UAR over the classes present and each present class's recall, of arg-max over ``scores``.

    Args:
        scores: ``(N, C)`` scores, columns in ``candidates`` order.
        gold: N gold labels (None: the row is left out).
        candidates: the C candidate labels.
    """
    from paraspeechclap.evaluation.classification import classification_metrics, predict_labels

    keep = [i for i, g in enumerate(gold) if g is not None]
    m = classification_metrics([gold[i] for i in keep], predict_labels(np.asarray(scores)[keep], candidates),
                               candidates)
    recall = {c: v["recall"] for c, v in m["per_class"].items() if v["support"] > 0}
    return float(m["uar_present"]), recall


def fit_class_bias(folds: Sequence[tuple[np.ndarray, Sequence[str | None]]], candidates: Sequence[str],
                   grid: np.ndarray = BIAS_GRID, rounds: int = 3) -> np.ndarray:
    """The ``(C,)`` bias, first entry 0, that maximises the mean UAR of ``scores + bias`` over ``folds``.

    Coordinate ascent: each round sets every other entry in turn to its best grid value (ties keep the
    earlier value, then the smaller one), so with no gain anywhere the bias stays 0.
    """
    bias = np.zeros(len(candidates))

    def mean_uar(b: np.ndarray) -> float:
        return float(np.mean([uar_and_recall(s + b, g, candidates)[0] for s, g in folds]))

    for _ in range(rounds):
        for k in range(1, len(candidates)):
            best_value, best = mean_uar(bias), bias[k]
            for v in grid:
                trial = bias.copy()
                trial[k] = v
                got = mean_uar(trial)
                if got > best_value + 1e-12:
                    best_value, best = got, v
            bias[k] = best
    return bias


def summarize(per_corpus: dict[str, tuple[float, dict, float | None]]) -> dict[str, Any]:
    """``{corpus: (uar4, recall4, uar8)}`` -> mean and minimum UAR, mean 8-class UAR and mean sad recall."""
    uar4 = [v[0] for v in per_corpus.values()]
    return {"uar4_mean": float(np.mean(uar4)), "uar4_min": float(min(uar4)),
            "uar8_mean": mean_present([v[2] for v in per_corpus.values()]),
            "sad": mean_present([v[1].get(SAD) for v in per_corpus.values()])}


def one_label_speakers(speakers: Sequence[str], gold: Sequence[str | None]) -> dict[str, int]:
    """How many speakers have labelled clips, and how many of them have clips of one label only."""
    labels: dict[str, set] = defaultdict(set)
    for s, g in zip(speakers, gold):
        if g is not None:
            labels[s].add(g)
    return {"speakers": len(labels), "one_label": sum(len(v) == 1 for v in labels.values())}


# -- the folds' scores ------------------------------------------------------------------------------------
def corpus_scores(run: Path, corpus: str, every: Any, precision: str = "fp32") -> dict[str, Any]:
    """Plain and speaker-centred 4- and 8-class cosine scores of ``run``'s fold model on its left-out corpus."""
    from paraspeechclap import load_model
    from paraspeechclap.data.attributes import get_attribute_set
    from paraspeechclap.evaluation.classification import attribute_set_scores
    from paraspeechclap.evaluation.runner import embed_rows

    model = load_model(str(run / corpus / "final"), precision=precision)
    manifest = every.filter(lambda r: r["source"] == corpus)
    rows = list(manifest)
    emb = embed_rows(model, manifest, range(len(manifest)), batch_size=16)
    speakers = row_speakers(rows)
    out: dict[str, Any] = {"speakers": speakers}
    for n, name in SETS.items():
        aset = get_attribute_set(name)
        out[f"gold{n}"], out[f"candidates{n}"] = [aset.gold(r) for r in rows], list(aset.candidates)
        for mode, e in (("plain", emb), ("speaker", group_centred(emb, speakers))):
            out[mode, n] = attribute_set_scores(model, e, aset)
    return out


def score(got: dict[str, Any], scores4: np.ndarray, scores8: np.ndarray) -> tuple[float, dict, float | None]:
    """(4-class UAR, 4-class recalls, 8-class UAR) of one corpus's scores."""
    uar4, recall = uar_and_recall(scores4, got["gold4"], got["candidates4"])
    present8 = any(g is not None for g in got["gold8"])
    uar8 = uar_and_recall(scores8, got["gold8"], got["candidates8"])[0] if present8 else None
    return uar4, recall, uar8


def class_bias(got: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Nested leave-one-corpus-out of :func:`fit_class_bias` on one recipe's plain 4-class scores."""
    corpora = list(got)
    cands = got[corpora[0]]["candidates4"]
    per_corpus, plain, biased = {}, {}, {}
    for c in corpora:
        bias = fit_class_bias([(got[o]["plain", 4], got[o]["gold4"]) for o in corpora if o != c], cands)
        plain[c] = score(got[c], got[c]["plain", 4], got[c]["plain", 8])
        biased[c] = (*uar_and_recall(got[c]["plain", 4] + bias, got[c]["gold4"], cands), None)
        per_corpus[c] = {"plain": plain[c][0], "biased": biased[c][0], "bias": dict(zip(cands, bias.tolist()))}
    every_fold = fit_class_bias([(got[o]["plain", 4], got[o]["gold4"]) for o in corpora], cands)
    return {"per_corpus": per_corpus, "summary": {"plain": summarize(plain), "biased": summarize(biased)},
            "bias_fitted_on_every_fold": dict(zip(cands, every_fold.tolist()))}


def ensembles(scores: dict[str, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every combination of the recipes (1 to all of them): the summary of their mean scores, per mode."""
    names, out = list(scores), []
    corpora = list(scores[names[0]])
    for k in range(1, len(names) + 1):
        for members in itertools.combinations(names, k):
            row: dict[str, Any] = {"members": list(members)}
            for mode in ("plain", "speaker"):
                row[mode] = summarize({c: score(scores[members[0]][c],
                                                *(np.mean([scores[m][c][mode, n] for m in members], axis=0)
                                                  for n in SETS)) for c in corpora})
            out.append(row)
    return out


def speaker_structure(got: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Speakers with one label, per corpus, and the speaker-centred summary without corpora where most do."""
    per_corpus = {c: one_label_speakers(g["speakers"], g["gold4"]) for c, g in got.items()}
    mixed = [c for c, s in per_corpus.items() if 2 * s["one_label"] <= s["speakers"]]
    summary = summarize({c: score(got[c], got[c]["speaker", 4], got[c]["speaker", 8]) for c in mixed})
    return {"per_corpus": per_corpus, "corpora_with_mixed_speakers": mixed, "speaker_summary_over_them": summary}


# -- command line ---------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", required=True, metavar="NAME=DIR",
                    help="loco.py --runs folders of the recipes compared (the first is analysed for class bias)")
    ap.add_argument("--corpora", default=",".join(SUMMARY_CORPORA), help="comma-separated left-out corpora")
    ap.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "int8"],
                    help="as loco.py's (default fp32, which loco.json's scores use)")
    add_json_arg(ap, "loco_posthoc.json")
    args = ap.parse_args()
    return run(parse_runs(ap, args.runs), args.corpora.split(","), args.precision, json_path(args))


def parse_runs(ap: argparse.ArgumentParser, items: Sequence[str]) -> dict[str, Path]:
    """``NAME=DIR`` arguments -> ``{NAME: DIR}``; a malformed one or a missing DIR is a usage error of ``ap``."""
    runs = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not Path(folder).is_dir():
            ap.error(f"--runs {item!r}: expected NAME=DIR with an existing DIR")
        runs[name] = Path(folder)
    return runs


def run(runs: dict[str, Path], corpora: list[str], precision: str, out: Path) -> int:
    from paraspeechclap.data.splits import load_shared_manifest

    t0 = time.perf_counter()
    every = load_shared_manifest(batches="all")
    scores = {name: {c: corpus_scores(folder, c, every, precision) for c in corpora} for name, folder in runs.items()}
    first = next(iter(scores))
    results = {"runs": {k: str(v) for k, v in runs.items()}, "corpora": corpora, "precision": precision,
               "bias_grid": BIAS_GRID.tolist(),
               "class_bias": {"recipe": first, **class_bias(scores[first])}, "ensembles": ensembles(scores),
               "speaker_structure": speaker_structure(scores[first]),
               "label_counts": {c: dict(Counter(g for g in scores[first][c]["gold4"] if g)) for c in corpora},
               "wall_s": None}
    results["wall_s"] = round(time.perf_counter() - t0, 1)
    write_results(out, results)
    print_table(results)
    return 0


def _cells(s: dict[str, Any]) -> str:
    return " ".join(f"{k} {s[k]:.3f}" for k in ("uar4_mean", "uar4_min", "uar8_mean", "sad") if s[k] is not None)


def print_table(results: dict[str, Any]) -> None:
    cb = results["class_bias"]
    print(f"class bias (nested LOCO, {cb['recipe']}): plain {_cells(cb['summary']['plain'])}")
    print(f"{'':36s}biased {_cells(cb['summary']['biased'])}")
    for row in results["ensembles"]:
        name = "+".join(row["members"])
        print(f"{name:42s} plain {_cells(row['plain'])} | speaker {_cells(row['speaker'])}")
    st = results["speaker_structure"]
    for c, s in st["per_corpus"].items():
        print(f"{c:8s} {s['one_label']:3d} of {s['speakers']:3d} speakers have one label")
    print(f"speaker-centred over {','.join(st['corpora_with_mixed_speakers'])}: "
          f"{_cells(st['speaker_summary_over_them'])}")


if __name__ == "__main__":
    sys.exit(main())
