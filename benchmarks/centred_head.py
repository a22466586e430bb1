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
  scaled to equal spread (:func:`fit_head`);
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
import copy
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from centre_points import centred_at, pooled_features, print_table, summary_of  # noqa: E402
from common import add_json_arg, json_path, row_speakers, write_results  # noqa: E402
from loco_posthoc import SAD, SETS, SUMMARY_CORPORA, parse_runs, score  # noqa: E402
from loco_probe import speaker_centred  # noqa: E402

MODES = ("speaker", "collection")
#: (name, head, centred at): the fold's own head at the embedding and at linear1, the fitted head at linear1
VARIANTS = (("own head, embedding", "own", "embedding"), ("own head, linear1", "own", "linear1"),
            ("centred head, linear1", "fitted", "linear1"), ("embedding head", "after", "embedding"))
#: a logistic-regression probe of the same centred features and labels (free class weights, no text)
PROBE = "linear probe, no text"


# -- pure pieces ----------------------------------------------------------------------------------------------
def qualifying(speakers: Sequence[str], gold: Sequence[str | None], min_clips: int, min_classes: int = 2) -> set[str]:
    """Speakers with at least ``min_clips`` labelled rows in at least ``min_classes`` classes."""
    counts = Counter(s for s, g in zip(speakers, gold) if g is not None)
    classes: dict[str, set[str]] = {}
    for s, g in zip(speakers, gold):
        if g is not None:
            classes.setdefault(s, set()).add(g)
    return {s for s, n in counts.items() if n >= min_clips and len(classes[s]) >= min_classes}


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
def balanced_weights(target: np.ndarray, classes: int) -> np.ndarray:
    """``(classes,)`` cross-entropy weights ``n / (k * n_c)`` over the ``k`` classes present (absent: 0), so
    every class present weighs the same in total (scikit-learn's ``class_weight="balanced"``)."""
    counts = np.bincount(np.asarray(target), minlength=classes).astype(np.float64)
    present = counts > 0
    out = np.zeros(classes)
    out[present] = counts.sum() / (present.sum() * counts[present])
    return out


def fit_head(projection: Any, x: np.ndarray, target: np.ndarray, classes: np.ndarray, scale: float, state_width: int,
             steps: int, lr: float, seed: int = 0, input_dropout: float = 0.5) -> Any:
    """A copy of ``projection`` trained on speaker-centred rows.

    The fit runs on each column divided by its spread over ``x`` (the copy's ``linear1`` multiplied by it, so it
    starts as ``projection``), which makes the few columns where speakers' clips differ most as easy to move as
    the rest; the spread is folded back into ``linear1`` at the end, so the head takes rows as given.

    Args:
        projection: the fold's audio :class:`~paraspeechclap.projection.Projection` (left unchanged).
        x: ``(N, H)`` centred pooled features; target: ``(N,)`` class index into ``classes``.
        classes: ``(C, D)`` normalised prompt embeddings; scale: the logit scale.
        state_width: the leading columns that are backbone states (input dropout applies to them only,
            as the recipe's ``feature_dropout`` does).

    Returns:
        the fitted head, in eval mode; cross-entropy weighted so each class present counts alike
        (:func:`balanced_weights`).
    """
    import torch
    from torch.nn import functional as F

    torch.manual_seed(seed)
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(target, dtype=torch.long)
    spread = xt.std(0).clamp_min(1e-4)
    xt = xt / spread
    head = copy.deepcopy(projection).float().train()
    with torch.no_grad():
        head.linear1.weight.mul_(spread[None, :])
    ct = torch.as_tensor(classes, dtype=torch.float32)
    weight = torch.as_tensor(balanced_weights(target, len(ct)), dtype=torch.float32)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.05)
    for _ in range(steps):
        states = F.dropout(xt[:, :state_width], p=input_dropout, training=True)
        emb = F.normalize(head(torch.cat([states, xt[:, state_width:]], dim=1)), dim=-1)
        loss = F.cross_entropy(scale * emb @ ct.T, yt, weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        head.linear1.weight.div_(spread[None, :])
    return head.eval()


def fit_rows(table: dict[str, Any], corpus: str, min_clips: int) -> dict[str, Any]:
    """What a fold fits on: the ``train``-split rows of the other corpora whose speaker qualifies
    (:func:`qualifying`) and that carry an 8-class label: their table ``index``, 8-class ``target`` and, for
    centring, every qualifying row (``speaker_rows``, labelled or not) with its speaker ids."""
    from paraspeechclap.data.attributes import get_attribute_set
    from paraspeechclap.data.splits import split_of

    rows, speakers = table["rows"], row_speakers(table["rows"])
    aset8 = get_attribute_set(SETS[8])
    gold8 = [aset8.gold(r) for r in rows]
    train = [i for i, r in enumerate(rows) if r["source"] != corpus and split_of(r) == "train"]
    ok = qualifying([speakers[i] for i in train], [gold8[i] for i in train], min_clips)
    rows_of = [i for i in train if speakers[i] in ok]
    labelled = [k for k, i in enumerate(rows_of) if gold8[i] is not None]
    index = {c: j for j, c in enumerate(aset8.candidates)}
    return {"speaker_rows": rows_of, "speakers": [speakers[i] for i in rows_of], "labelled": labelled,
            "target": np.array([index[gold8[rows_of[k]]] for k in labelled]), "n_speakers": len(ok)}


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
    import torch

    from paraspeechclap import load_model
    from paraspeechclap.centering import center_embeddings
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
    with torch.enable_grad():
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


def pooled_table(cache: Path) -> dict[str, Any]:
    """Every clip of the shared real speech (all batches): its row and its ``(H,)`` pooled features, cached."""
    import json

    from paraspeechclap import load_model
    from paraspeechclap.data.splits import load_shared_manifest

    every = load_shared_manifest(batches="all")
    rows = list(every)
    keys = [r.get("audio") for r in rows]
    if cache.is_file():
        data = np.load(cache, allow_pickle=False)
        if json.loads(str(data["keys"])) == keys:
            return {"rows": rows, "pooled": data["pooled"]}
    model = load_model(precision="fp32")
    paths = [str(every.audio_path(i)) for i in range(len(every))]
    pooled = np.concatenate([pooled_features(model, paths[s:s + 64]) for s in range(0, len(paths), 64)])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, pooled=pooled, keys=json.dumps(keys))
    return {"rows": rows, "pooled": pooled}


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
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "paraspeechclap" / "centred_head.npz")
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
