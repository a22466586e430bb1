"""Centring on neutral reference clips, through which head, on leave-one-corpus-out folds.

``reference=`` lets a user centre a clip on clips they name: neutral speech of the same speaker. Today it
centres the main head's embeddings (``l2(x - mean(R))``), while speaker centring scores through the model's
centred head (``paraspeechclap fit-centred-head``). This measures, for each fold model of a ``loco.py --runs``
folder (its head fitted as ``loco.py --centred-head`` fits it), the curve ``loco.py`` reports (4-class UAR of
each speaker's other clips centred on k = 1, 2, 4, 8, 16 of their neutral clips) four ways:

- ``main head`` (``shipped``): what ``reference=`` does, ``l2(x - mean_R x)`` of the plain embeddings;
- ``main head + training offset``: ``l2(x - mean_R x + d)``, where ``d`` is what a neutral mean lacks of a
  speaker's mean on the fold's own training speakers (:func:`neutral_offset`): subtracting a neutral mean moves a
  clip off neutral speech instead of off the speaker's usual voice, which speaker centring (and the centred head)
  works with;
- ``centred head``: ``l2(finish(linear1(h) - mean_R linear1(h_R)))`` through the fold's centred head;
- ``centred head + training offset``: the same with ``d`` measured at the head's ``linear1``.

::

    python benchmarks/reference_centring.py --runs v19=runs/loco-lite-speaker-centred-w01
                                                    # -> benchmarks/results/reference_centring.json

No label of the scored corpus is read to centre (only to choose its neutral reference clips, as ``loco.py``
does); ``d`` reads the training corpora's labels. The summary keys are the three alternatives, each a post-hoc
variant ``loco.py --posthoc`` counts; ``shipped`` is the curve ``loco.json`` already reports.
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
import loco  # noqa: E402
from common import add_json_arg, json_path, mean_present, pooled_rows, pooled_table, row_speakers, write_results  # noqa: E402
from loco import REFERENCE_COUNTS  # noqa: E402
from loco_posthoc import SUMMARY_CORPORA, parse_runs  # noqa: E402

SHIPPED = "main head"
ALTERNATIVES = ("main head + training offset", "centred head", "centred head + training offset")


# -- pure pieces ----------------------------------------------------------------------------------------------
def neutral_offset(x: np.ndarray, speakers: Sequence[Any], gold: Sequence[str | None]) -> tuple[np.ndarray, int]:
    """``d``, ``(D,)`` float64: the mean over speakers of (the speaker's mean row - the mean of their neutral rows),
    over speakers heard as ``"neutral"`` and in at least one other class (an unlabelled row counts in the
    speaker's mean, as speaker centring's mean counts it); and how many speakers it averages.

    Args:
        x: ``(N, D)`` rows (embeddings, or the centred head's ``linear1`` outputs); speakers, gold: ``(N,)``.
    """
    x = np.asarray(x, dtype=np.float64)
    diffs = []
    for s in sorted(set(speakers), key=str):
        idx = [i for i, t in enumerate(speakers) if t == s]
        neutral = [i for i in idx if gold[i] == "neutral"]
        if neutral and len({gold[i] for i in idx if gold[i] is not None}) >= 2:
            diffs.append(x[idx].mean(axis=0) - x[neutral].mean(axis=0))
    if not diffs:
        raise ValueError("no speaker heard as neutral and in another class")
    return np.mean(diffs, axis=0), len(diffs)


def centrings(model: Any, pooled: np.ndarray, offsets: dict[str, np.ndarray]) -> dict[str, Any]:
    """The four ways of centring a corpus's clips (``pooled``: ``(N, H)``) on reference clips among them:
    ``{name: centre(other, ref) -> (len(other), D) unit rows}`` (indices into ``pooled``); ``offsets``: ``d`` for
    ``"main"`` (embedding space) and ``"centred"`` (the centred head's ``linear1``)."""
    from paraspeechclap.centering import l2_rows

    emb = model.embed_pooled(pooled).astype(np.float64)
    lin = model.centred_head_rows(pooled)  # what center="speaker" centres

    def through_head(offset: np.ndarray | float) -> Any:
        return lambda other, ref: model.finish_centred_rows(lin[other] - lin[ref].mean(axis=0) + offset)

    return {SHIPPED: lambda other, ref: l2_rows(emb[other] - emb[ref].mean(axis=0)),
            ALTERNATIVES[0]: lambda other, ref: l2_rows(emb[other] - emb[ref].mean(axis=0) + offsets["main"]),
            ALTERNATIVES[1]: through_head(0.0),
            ALTERNATIVES[2]: through_head(offsets["centred"])}


# -- one fold ---------------------------------------------------------------------------------------------------
def fold_offsets(model: Any, table: dict[str, Any], corpus: str, trained_on: set[str]) -> dict[str, Any]:
    """``d`` in both spaces from the fold's own training speakers (the rows its centred head is fitted on)."""

    from paraspeechclap.data.attributes import get_attribute_set

    rows, idx = table["rows"], loco.fold_train_rows(table, corpus, trained_on)
    pooled = pooled_rows(model, table, idx)
    speakers, gold = [str(rows[i]["speaker"]) for i in idx], [get_attribute_set("emotion").gold(rows[i]) for i in idx]
    main, n = neutral_offset(model.embed_pooled(pooled), speakers, gold)
    centred, _ = neutral_offset(model.centred_head_rows(pooled), speakers, gold)
    return {"main": main, "centred": centred, "speakers": n}


def fold_result(folder: Path, corpus: str, table: dict[str, Any], trained_on: set[str]) -> dict[str, Any]:
    """One left-out corpus: plain and speaker-centred 4-class UAR, and each way's neutral-reference curve."""
    from paraspeechclap import load_model
    from paraspeechclap.data.attributes import get_attribute_set

    if not loco.fold_finished(folder / corpus):
        raise SystemExit(f"{folder / corpus}: no finished fold model (train it with loco.py --runs {folder})")
    model = load_model(str(folder / corpus / "final"), precision="fp32")
    fit = loco.fit_fold_head(model, table, corpus, trained_on)
    offsets = fold_offsets(model, table, corpus, trained_on)
    idx = [i for i, r in enumerate(table["rows"]) if r["source"] == corpus]
    rows, pooled = [table["rows"][i] for i in idx], pooled_rows(model, table, idx)
    speakers, gold = row_speakers(rows), [get_attribute_set("emotion").gold(r) for r in rows]
    emb = model.embed_pooled(pooled)
    return {"plain": loco._scores(model, emb, rows)["uar4"],
            "speaker": loco._scores(model, loco.centred(model, pooled, emb, "speaker", speakers), rows)["uar4"],
            "fit": {**fit, "offset_speakers": offsets["speakers"]},
            "curves": {name: loco.neutral_reference_curve(model, rows, speakers, gold, centre)
                       for name, centre in centrings(model, pooled, offsets).items()}}


def summarise(per: dict[str, dict[str, Any]], names: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """Each way's mean curve over the corpora (a corpus without the curve does not count)."""
    corpora = list(per)
    return {name: {k: mean_present([(per[c]["curves"][name] or {}).get(k) for c in corpora])
                   for k in map(str, REFERENCE_COUNTS)} for name in names}


def print_table(results: dict[str, Any]) -> None:
    ks = list(map(str, REFERENCE_COUNTS))
    for name, r in results["runs"].items():
        print(f"{name}: plain {r['plain']:.3f}, speaker-centred {r['speaker']:.3f}; k neutral references "
              + " / ".join(ks))
        for way, curve in {SHIPPED: r["shipped"], **r["summary"]}.items():
            print(f"  {way:32s} " + " ".join(f"{curve[k]:.3f}" if curve[k] is not None else "  -  " for k in ks))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", nargs="+", required=True, metavar="NAME=DIR",
                    help="loco.py --runs folders (one fold model per left-out corpus)")
    ap.add_argument("--corpora", default=",".join(SUMMARY_CORPORA))
    ap.add_argument("--config", default="configs/train/lite.yaml", help="the recipe the folds trained (its corpora)")
    add_json_arg(ap, "reference_centring.json")
    args = ap.parse_args()
    runs, corpora = parse_runs(ap, args.runs), args.corpora.split(",")
    t0 = time.time()
    table, trained_on = pooled_table(), loco.recipe_corpora(args.config)
    results: dict[str, Any] = {"corpora": corpora, "precision": "fp32", "reference_counts": list(REFERENCE_COUNTS),
                               "runs": {}}
    for name, folder in runs.items():
        per = {c: fold_result(folder, c, table, trained_on) for c in corpora}
        results["runs"][name] = {
            "dir": str(folder),
            "plain": mean_present([per[c]["plain"] for c in corpora]),
            "speaker": mean_present([per[c]["speaker"] for c in corpora]),
            "shipped": summarise(per, [SHIPPED])[SHIPPED],
            "summary": summarise(per, ALTERNATIVES),
            "per_corpus": per}
    results["wall_s"] = round(time.time() - t0, 1)
    write_results(json_path(args), results)
    print_table(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
