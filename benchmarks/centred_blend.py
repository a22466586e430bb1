"""Speaker centring mixed with the clip's own plain embedding, on the leave-one-corpus-out folds.

Speaker centring (``center="speaker"``, through the centred head) removes what a speaker's clips share. Where a
speaker is heard in one emotion only (26 of URDU's 29 speakers), that is the emotion itself, and the plain
embedding still holds it. This scores each LOCO fold model's speaker-centred embedding mixed with its plain one,
``l2((1 - w) * centred + w * plain)`` (:func:`blend`; both unit vectors, so ``w`` weighs the two scores), for the
weights ``--weights``, with the fold's centred head fitted as ``loco.py --centred-head`` fits it (300 steps):

- on the fold's **dev** speakers of the corpora it trained on (as ``centred_head_steps.py``): a rule fixed before
  the left-out corpora were looked at chooses the weight with the best mean dev 4-class UAR (ties: 8-class,
  then the smaller weight);
- on the **left-out** corpora, with the weight chosen on dev, and **nested**: each left-out corpus scored with the
  weight that is best on the other folds' left-out corpora (:func:`nested_choice`), what a weight chosen on
  unseen corpora would give a new one.

Weight 0 is speaker centring as shipped, weight 1 plain scoring::

    python benchmarks/centred_blend.py --runs runs/loco-lite-speaker-centred-w01
                                        # -> benchmarks/results/centred_blend.json
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from centred_head_steps import (  # noqa: E402
    SHIPPED_STEPS,
    add_fold_args,
    finish_settings,
    run_folds,
    settings_scores,
    shipped_fold_model,
)
from common import add_json_arg, pooled_rows, row_speakers  # noqa: E402
from loco import _scores, centred  # noqa: E402

DEFAULT_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)


# -- pure pieces ----------------------------------------------------------------------------------------------
def blend(centred_emb: np.ndarray, plain_emb: np.ndarray, weight: float) -> np.ndarray:
    """``(N, D)`` unit rows: ``l2((1 - weight) * centred_emb + weight * plain_emb)``, row by row."""
    mixed = (1.0 - weight) * np.asarray(centred_emb, np.float64) + weight * np.asarray(plain_emb, np.float64)
    return mixed / np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-12)


# -- one fold -------------------------------------------------------------------------------------------------
def blended_scores(model: Any, table: dict[str, Any], idx: list[int], weights: list[float]) -> dict[float, Any]:
    """``{weight: loco._scores}`` of rows ``idx``, speaker-centred through the model's centred head and blended."""
    rows = [table["rows"][i] for i in idx]
    pooled = pooled_rows(model, table, idx)
    plain = model.embed_pooled(pooled)
    cen = centred(model, pooled, plain, "speaker", row_speakers(rows))
    return {w: _scores(model, blend(cen, plain, w), rows) for w in weights}


def fold_blends(run: Path, corpus: str, table: dict[str, Any], trained_on: set[str],
                weights: list[float]) -> dict[str, Any]:
    """``{"weights": {weight: {"dev4", "dev8", "dev_per_corpus", "loco"}}, "fit": ...}`` for one fold."""
    model, info = shipped_fold_model(run, corpus, table, trained_on)
    score = partial(blended_scores, weights=weights)
    return {"weights": settings_scores(model, table, corpus, trained_on, score), "fit": info}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_fold_args(ap)
    ap.add_argument("--weights", default=",".join(map(str, DEFAULT_WEIGHTS)),
                    help="plain-embedding weights to score (0: speaker centring as shipped, 1: plain)")
    add_json_arg(ap, "centred_blend.json")
    args = ap.parse_args()
    weights = sorted({float(w) for w in args.weights.split(",")})
    if any(not 0.0 <= w <= 1.0 for w in weights):
        ap.error(f"--weights: each must lie in [0, 1], got {weights}")
    t0 = time.time()
    folds = run_folds(args, lambda run, c, table, trained_on: fold_blends(run, c, table, trained_on, weights))
    finish_settings(args, folds, weights, "weights", t0,
                    "max over weights of the folds' mean dev speaker-centred 4-class UAR (ties: 8-class)",
                    [f"speaker-centred blended with plain, weight {w:g}" for w in weights if 0 < w < 1],
                    "plain weight", head_steps=SHIPPED_STEPS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
