"""A head of its own for centred scoring, fitted after training, on leave-one-corpus-out folds.

Speaker centring scores a clip by how it differs from its speaker's usual voice. The default model's one
audio head is trained mostly on clips alone (plain scoring), so the difference from a speaker's mean is
scored by a head made for something else: on v18's folds 0.663 speaker-centred (0.680 when centred at the
projection's first linear layer, ``centre_points.py``), while a linear probe trained *and* tested on
speaker-centred backbone features reaches 0.716 (``loco_probe.py``). This fits, for each fold model of a
``loco.py --runs`` folder, a second audio projection for centred scoring only and scores the left-out corpus:

- the new head starts as a copy of the fold's audio projection and is trained on the fold's own training
  clips (the shared split's ``train`` speakers of the corpora the fold trained on, with an 8-class emotion
  label, of speakers with ``--min-clips`` such clips in 2+ classes: by default every speaker heard in two
  classes: ``emospeech_in``'s speakers have a handful of clips each, so 10, ``loss.centred``'s threshold,
  leaves every one of them out: 28 speakers against 78 on the ASED fold), each moved off its speaker's mean at the
  head's first linear layer (equal to moving the backbone features off their mean, so the mean needs no
  refresh), against the fold's own 8-class prompt embeddings (text side frozen), class-balanced cross-entropy
  at the fold's logit scale, with the input dropout and projection dropout the recipe trains with, on columns
  scaled to equal spread (:func:`paraspeechclap.centred_head.fit_projection`, as ``fit-centred-head`` fits);
- ``embedding head``: a small head over the *plain embedding* instead, ``l2(G(x - mean))`` with ``x`` the
  fold's normalised embedding and ``G`` a ``Projection(D, D)`` that starts as the identity
  (:func:`identity_projection`), fitted the same way. It needs only the embeddings, so it would reach every
  place that centres stored embeddings (search indexes, annotation shards), which the first needs features for;
- the left-out corpus is scored ``speaker``- and ``collection``-centred with each (the same means ``center=``
  uses, no label read), beside the fold's own head centred at the embedding (what ``center=`` does today)
  and at its first linear layer, and beside a class-balanced logistic regression on the same centred features
  and labels (:func:`probe_scores`: free class weights, no text; what ``loco_probe.py`` measured).

::

    python benchmarks/centred_head.py --runs v18=runs/loco-lite-speaker-centred-w01
                                                    # -> benchmarks/results/centred_head.json

Summary keys follow ``centre_points.py``. The backbone is frozen and its head-side transforms have no
weights, so every fold pools a clip alike: the pooled features are computed once (``--cache``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from centre_points import centred_at, print_table, summary_of  # noqa: E402
from common import POOLED_CACHE, add_json_arg, json_path, pooled_table, row_speakers, write_results  # noqa: E402
from loco_posthoc import SAD, SETS, SUMMARY_CORPORA, parse_runs, score  # noqa: E402

MODES = ("speaker", "collection")
#: (name, head, centred at): the fold's own head at the embedding and at linear1, the fitted head at linear1
VARIANTS = (("own head, embedding", "own", "embedding"), ("own head, linear1", "own", "linear1"),
            ("centred head, linear1", "fitted", "linear1"), ("embedding head", "after", "embedding"))
#: a logistic-regression probe of the same centred features and labels (free class weights, no text)
PROBE = "linear probe, no text"


# -- pure pieces ----------------------------------------------------------------------------------------------
def identity_projection(dim: int) -> Any:
    """A ``Projection(dim, dim)`` that starts as (almost) the identity: ``linear1 = I``, ``linear2 = 0``, so its
    output is the input standardised across its ``dim`` values (the LayerNorm), which normalised is the input
    normalised up to its mean over dimensions."""
    import torch

    from paraspeechclap.projection import Projection

    head = Projection(dim, dim, dropout=0.2)
    with torch.no_grad():
        head.linear1.weight.copy_(torch.eye(dim))
        head.linear2.weight.zero_()
    return head


# -- fitting --------------------------------------------------------------------------------------------------
def fit_head(projection: Any, x: np.ndarray, target: np.ndarray, classes: np.ndarray, scale: float, state_width: int,
             steps: int, lr: float) -> Any:
    """:func:`paraspeechclap.centred_head.fit_projection` with the shipped settings but ``steps`` and ``lr``
    (what ``paraspeechclap fit-centred-head`` fits); the fitted head only."""
    from paraspeechclap.centred_head import CentredHeadFit, fit_projection

    return fit_projection(projection, x, target, classes, scale, state_width, CentredHeadFit(steps=steps, lr=lr))[0]


def fit_rows(table: dict[str, Any], corpus: str, min_clips: int) -> dict[str, Any]:
    """What a fold fits on: the ``train``-split rows of the other corpora whose speaker qualifies
    (:func:`paraspeechclap.centred_head.select_rows`) and that carry an 8-class label: their table ``index``,
    8-class ``target`` and, for centring, every qualifying row (``speaker_rows``, labelled or not) with its
    speaker ids."""
    from paraspeechclap.centred_head import CentredHeadFit, select_rows
    from paraspeechclap.data.attributes import get_attribute_set
    from paraspeechclap.data.splits import split_of

    rows, speakers = table["rows"], row_speakers(table["rows"])
    aset8 = get_attribute_set(SETS[8])
    gold8 = [aset8.gold(r) for r in rows]
    train = [i for i, r in enumerate(rows) if r["source"] != corpus and split_of(r) == "train"]
    rows_of = [train[k] for k in select_rows([speakers[i] for i in train], [gold8[i] for i in train],
                                             CentredHeadFit(min_clips=min_clips))]
    labelled = [k for k, i in enumerate(rows_of) if gold8[i] is not None]
    index = {c: j for j, c in enumerate(aset8.candidates)}
    return {"speaker_rows": rows_of, "speakers": [speakers[i] for i in rows_of], "labelled": labelled,
            "target": np.array([index[gold8[rows_of[k]]] for k in labelled]),
            "n_speakers": len({speakers[i] for i in rows_of})}


def probe_scores(train_x: np.ndarray, target: np.ndarray, test_x: np.ndarray, n_classes: int) -> np.ndarray:
    """``(N, n_classes)`` log-probabilities of a class-balanced logistic regression on standardised columns (as
    ``loco_probe.py`` fits it), ``-inf`` for classes absent from ``target``: a classifier with free class
    weights, no text, to compare the text-anchored heads with."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    clf = LogisticRegression(C=0.01 * 4096 / train_x.shape[1], class_weight="balanced", max_iter=3000)
    clf.fit(scaler.transform(train_x), target)
    out = np.full((len(test_x), n_classes), -np.inf)
    out[:, clf.classes_] = clf.predict_log_proba(scaler.transform(test_x))
    return out


def fold_result(run: Path, corpus: str, table: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """``{variant: {mode: (uar4, recall4, uar8)}}`` on the left-out ``corpus`` and what the fit used."""
    from paraspeechclap import load_model
    from paraspeechclap.centering import center_embeddings
    from paraspeechclap.centred_head import speaker_centred
    from paraspeechclap.data.attributes import get_attribute_set
    from paraspeechclap.evaluation.classification import attribute_set_scores, embed_class_prompts

    model = load_model(str(run / corpus / "final"), precision="fp32")
    rows, x, f = table["rows"], table["pooled"], fit_rows(table, corpus, args.min_clips)
    sets = {n: get_attribute_set(name) for n, name in SETS.items()}
    classes = embed_class_prompts(model, sets[8].prompts(ensemble=True), sets[8].candidates)
    scale, lab = float(model.logit_scale.detach()), f["labelled"]
    plain = embed_pooled(model.audio_projection.eval(), x)
    groups = np.asarray(f["speakers"])
    centred = {k: speaker_centred(np.asarray(v[f["speaker_rows"]], np.float64), groups)[lab]
               for k, v in (("x", x), ("e", plain))}
    fitted = fit_head(model.audio_projection, centred["x"], f["target"], classes, scale,
                      model.audio_branch.state_width, args.steps, args.lr)
    after = fit_head(identity_projection(plain.shape[1]), centred["e"], f["target"], classes, scale, 0,
                     args.steps, args.lr)
    test = [i for i, r in enumerate(rows) if r["source"] == corpus]
    speakers = row_speakers(rows)
    spk = [speakers[i] for i in test]
    got = {k: v for n, a in sets.items()
           for k, v in ((f"gold{n}", [a.gold(rows[i]) for i in test]), (f"candidates{n}", list(a.candidates)))}
    heads = {"own": model.audio_projection.eval(), "fitted": fitted}
    out: dict[str, Any] = {name: {} for name in [v[0] for v in VARIANTS] + [PROBE]}
    for mode in MODES:
        for name, which, point in VARIANTS:
            if which == "after":
                emb = embed_pooled(after, center_embeddings(plain[test], mode, spk, normalize=False)[0])
            else:
                emb = centred_at(heads[which], x[test], point, mode, spk)
            out[name][mode] = score(got, *(attribute_set_scores(model, emb, sets[n]) for n in (4, 8)))
        s8 = probe_scores(centred["x"], f["target"], center_embeddings(x[test], mode, spk, normalize=False)[0],
                          len(sets[8].candidates))
        s4 = s8[:, [list(sets[8].candidates).index(c) for c in sets[4].candidates]]
        out[PROBE][mode] = score(got, s4, s8)
    return {"scores": out, "fit": {"clips": len(lab), "speakers": f["n_speakers"]}}


def embed_pooled(head: Any, x: np.ndarray) -> np.ndarray:
    """``(N, H)`` rows through ``head`` (eval mode) -> ``(N, D)`` unit rows."""
    import torch

    from paraspeechclap.centering import l2_rows

    with torch.no_grad():
        return l2_rows(head.eval()(torch.as_tensor(x, dtype=torch.float32)).numpy())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", nargs="+", required=True, metavar="NAME=DIR",
                    help="loco.py --runs folders (one fold model per left-out corpus)")
    ap.add_argument("--corpora", default=",".join(SUMMARY_CORPORA))
    ap.add_argument("--steps", type=int, default=300, help="full-batch steps of the head's fit")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-clips", type=int, default=2,
                    help="a training speaker's labelled clips, at least (2: every speaker heard in 2+ classes; "
                         "10, loss.centred's threshold, keeps no emospeech_in speaker)")
    ap.add_argument("--cache", type=Path, default=POOLED_CACHE)
    add_json_arg(ap, "centred_head.json")
    args = ap.parse_args()
    runs, corpora = parse_runs(ap, args.runs), args.corpora.split(",")
    t0 = time.time()
    table = pooled_table(args.cache)
    results: dict[str, Any] = {"corpora": corpora, "precision": "fp32", "steps": args.steps, "lr": args.lr,
                               "min_clips": args.min_clips, "runs": {}}
    for name, folder in runs.items():
        per = {c: fold_result(folder, c, table, args) for c in corpora}
        results["runs"][name] = {
            "dir": str(folder),
            "fit": {c: per[c]["fit"] for c in corpora},
            "summary": {v: {m: summary_of({c: per[c]["scores"][v][m] for c in corpora}) for m in MODES}
                        for v in per[corpora[0]]["scores"]},
            "per_corpus": {c: {v: {m: {"uar4": s[0], "uar8": s[2], "sad": s[1].get(SAD)}
                                   for m, s in per[c]["scores"][v].items()} for v in per[c]["scores"]}
                           for c in corpora},
        }
    results["wall_s"] = round(time.time() - t0, 1)
    write_results(json_path(args), results)
    print_table(results, "head, centred at")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
