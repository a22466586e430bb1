"""Plain emotion words on corpora a model never heard: what a new user gets from ``classify --candidates``.

For each fold of a ``benchmarks/loco.py`` run folder (a model trained without one corpus), every clip of the
left-out corpus with a 4-class emotion label is scored zero-shot:

- ``set``: the project's ``emotion`` attribute set with its prompt ensemble (what ``loco.json`` reports);
- one row per template: the plain words ``angry, happy, sad, neutral`` in that template, one prompt per word
  (``classify --candidates angry happy sad neutral [--template T]``; the first template is the default);
- the synonyms ``mad, delighted, unhappy, impassive``, which no prompt or caption bank the model trained on
  contains (its emotion prompts word "saddened" as sad, sorrowful, downcast, melancholy), in the default
  template and bare: do words outside the training ensemble land where their class's words do (issue 18,
  item 3)?

UAR over the classes present and the recall of sad speech, per fold and as the mean over folds.

    python benchmarks/plain_words.py --runs runs/loco-lite-tags-v3     # -> benchmarks/results/plain_words.json
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

#: the emotion set's class of each plain word a user would type
WORDS = {"angry": "angry", "happy": "happy", "sad": "saddened", "neutral": "neutral"}
TEMPLATES = ("A person is speaking in a {} style.", "{}", "A person speaks with a {} tone.", "The speaker sounds {}.")
#: words of the same classes (in WORDS order) that are in none of the emotion sets' training prompts
SYNONYMS = ("mad", "delighted", "unhappy", "impassive")
#: the templates the synonyms are scored in (variant ``synonyms:<template>``)
SYNONYM_TEMPLATES = TEMPLATES[:2]


def word_scores(audio: np.ndarray, words: np.ndarray, gold: list[str]) -> dict[str, float | None]:
    """:func:`uar_and_sad` of ``audio (N, D)`` against ``words (4, D)`` (in :data:`WORDS` order), each clip
    given the class of its nearest word; ``gold`` in the set's class names."""
    classes = list(WORDS.values())
    return uar_and_sad(gold, [classes[i] for i in (audio @ words.T).argmax(axis=1)])


def uar_and_sad(gold: list[str], pred: list[str]) -> dict[str, float | None]:
    """UAR over the classes present and the recall of "saddened" (None without sad clips)."""
    from paraspeechclap.evaluation.classification import classification_metrics

    m = classification_metrics(gold, pred, list(WORDS.values()))
    sad = m["per_class"]["saddened"]
    return {"uar": float(m["uar_present"]), "recall_sad": float(sad["recall"]) if sad["support"] else None}


def score_fold(fold: Path, templates: tuple[str, ...]) -> dict[str, Any]:
    from paraspeechclap import load_model
    from paraspeechclap.data.attributes import get_attribute_set
    from paraspeechclap.data.splits import load_shared_manifest
    from paraspeechclap.evaluation.classification import score_attribute_set
    from paraspeechclap.evaluation.runner import embed_rows

    model = load_model(str(fold / "final"), precision="fp32")
    aset = get_attribute_set("emotion")
    corpus = load_shared_manifest(batches="all").filter(lambda r: r["source"] == fold.name)
    kept = [i for i, r in enumerate(corpus) if aset.gold(r) is not None]
    rows = [corpus[i] for i in kept]
    audio = embed_rows(model, corpus, kept, batch_size=16)
    gold = [str(aset.gold(r)) for r in rows]
    predicted = score_attribute_set(model, audio, rows, "emotion")["predicted"]
    out: dict[str, Any] = {"clips": len(rows), "set": uar_and_sad(gold, [str(p) for p in predicted])}
    for t in templates:
        out[t] = word_scores(audio, model.embed_text([t.format(w) for w in WORDS]), gold)
    for t in SYNONYM_TEMPLATES:
        out[f"synonyms:{t}"] = word_scores(audio, model.embed_text([t.format(w) for w in SYNONYMS]), gold)
    return out


def summarize(per_fold: dict[str, Any]) -> dict[str, Any]:
    """Mean over the folds of each variant's metrics (a fold without sad clips is left out of its mean)."""
    variants = [k for k in next(iter(per_fold.values())) if k != "clips"]
    return {v: {k: mean_present([f[v][k] for f in per_fold.values()]) for k in ("uar", "recall_sad")}
            for v in variants}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", required=True, help="a benchmarks/loco.py --runs folder (one sub-folder per fold)")
    ap.add_argument("--corpora", default="ased,emodb,emovo,savee,urdu", help="folds scored (comma-separated)")
    add_json_arg(ap, "plain_words.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    folds = [Path(args.runs) / c for c in args.corpora.split(",")]
    missing = [str(f) for f in folds if not (f / "final").is_dir()]
    if missing:
        raise SystemExit(f"no trained fold in {', '.join(missing)}")
    per_fold = {f.name: score_fold(f, TEMPLATES) for f in folds}
    res = {"runs": args.runs, "folds": [f.name for f in folds], "words": WORDS, "templates": list(TEMPLATES),
           "synonyms": list(SYNONYMS),
           "per_fold": per_fold, "summary": summarize(per_fold), "wall_s": round(time.perf_counter() - t0, 1)}
    write_results(json_path(args), res)
    print(f"{'prompts':40s} {'UAR':>6s} {'sad':>6s}   (means over {', '.join(res['folds'])})")
    for v, m in res["summary"].items():
        print(f"{v:40s} {m['uar']:>6.3f} {m['recall_sad']:>6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
