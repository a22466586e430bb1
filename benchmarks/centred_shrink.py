"""Speaker centring on a speaker mean shrunk towards the collection's, on the leave-one-corpus-out folds.

Speaker centring (``center="speaker"``, through the centred head) subtracts each speaker's mean. A speaker heard
in a few clips of one emotion (26 of URDU's 29 speakers, about 7 clips each) has that emotion in their mean, so
centring removes it. A mean of few clips is also a poor estimate of the speaker's own offset: the random-effects
(empirical Bayes) estimate pulls it towards the collection's mean by ``k / (n + k)`` for a speaker of ``n``
clips (the library's ``speaker_prior``, :mod:`paraspeechclap.centering`, which this sets to each ``k`` in turn).
``k = 0`` is speaker centring as v19 shipped it; a very large ``k`` is collection centring through the centred
head. No label is read: ``k`` is a number of clips.

Each fold's centred head is fitted as ``loco.py --centred-head`` fits it (300 steps), then scored for each ``k`` of
``--k``:

- on the fold's **dev** speakers of the corpora it trained on (as ``centred_head_steps.py``; the collection is
  that corpus's dev clips): the ``k`` with the best mean dev 4-class UAR (ties: 8-class, then the smaller ``k``)
  is the choice, a rule fixed before the left-out corpora were looked at;
- on the **left-out** corpora (the collection: all of the corpus's clips), at the ``k`` chosen on dev, and
  **nested** (each left-out corpus at the ``k`` best on the other four)::

    python benchmarks/centred_shrink.py --runs runs/loco-lite-speaker-centred-w01
                                        # -> benchmarks/results/centred_shrink.json
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
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
from loco import _scores  # noqa: E402

#: clips of prior weight on the collection mean; 1e6 stands for collection centring through the centred head
DEFAULT_K = (0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 1e6)


# -- one fold -------------------------------------------------------------------------------------------------
def shrunk_embeddings(model: Any, pooled: np.ndarray, speakers: Sequence[Any], ks: list[float]
                      ) -> dict[float, np.ndarray]:
    """``{k: (N, D) unit rows}``: ``N`` clips' pooled features ``(N, H)`` centred as ``center="speaker"`` centres
    them (through the model's centred head if it has one) with the model's ``speaker_prior`` set to ``k``, every
    clip as reference (so the collection is all ``N``, and at ``k = 0`` a lone speaker is centred on it). The
    model's own prior is restored afterwards."""
    before = model.config.speaker_prior
    out = {}
    try:
        for k in ks:
            model.set_speaker_prior(k)
            out[k] = model.embed_pooled(pooled, "speaker", speakers, reference=pooled)
    finally:
        model.set_speaker_prior(before)
    return out


def shrunk_scores(model: Any, table: dict[str, Any], idx: list[int], ks: list[float]) -> dict[float, Any]:
    """``{k: loco._scores}`` of rows ``idx`` (:func:`shrunk_embeddings`, the rows' speakers)."""
    rows = [table["rows"][i] for i in idx]
    emb = shrunk_embeddings(model, pooled_rows(model, table, idx), row_speakers(rows), ks)
    return {k: _scores(model, e, rows) for k, e in emb.items()}


def fold_shrinks(run: Path, corpus: str, table: dict[str, Any], trained_on: set[str], ks: list[float],
                 head: str = "centred") -> dict[str, Any]:
    """``{"k": {k: {"dev4", "dev8", "dev_per_corpus", "loco"}}, "fit": ...}`` for one fold, centred through
    ``head`` (``"centred"``: the fold's centred head, fitted as shipped; ``"main"``: its audio projection)."""
    if head == "main":  # no centred head: what models without one (official checkpoints) centre through
        from paraspeechclap import load_model

        model, info = load_model(str(run / corpus / "final"), precision="fp32"), {"fit_s": 0.0}
        model.set_centred_head(None)
    else:
        model, info = shipped_fold_model(run, corpus, table, trained_on)
    score = partial(shrunk_scores, ks=ks)
    return {"k": settings_scores(model, table, corpus, trained_on, score), "fit": info}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_fold_args(ap)
    ap.add_argument("--k", default=",".join(f"{k:g}" for k in DEFAULT_K),
                    help="prior weights, in clips, on the collection mean (0: speaker centring as shipped)")
    ap.add_argument("--head", choices=("centred", "main"), default="centred",
                    help="centre through each fold's centred head (fitted as shipped) or its main audio head")
    add_json_arg(ap, "centred_shrink.json")
    args = ap.parse_args()
    ks = sorted({float(k) for k in args.k.split(",")})
    if any(k < 0 for k in ks):
        ap.error(f"--k: each must be >= 0, got {ks}")
    t0 = time.time()
    folds = run_folds(args, lambda run, c, table, trained_on: fold_shrinks(run, c, table, trained_on, ks, args.head))
    finish_settings(args, folds, ks, "k", t0,
                    "max over k of the folds' mean dev speaker-centred 4-class UAR (ties: 8-class, smaller k)",
                    [f"speaker centring on a mean shrunk towards the collection's, k {k:g}" for k in ks if k], "k",
                    head=args.head, head_steps=SHIPPED_STEPS if args.head == "centred" else None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
