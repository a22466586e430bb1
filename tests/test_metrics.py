"""Metric functions against hand-computed cases and naive reference implementations.

The references below are written independently of the package: plain Python loops and sorts, and
(where available) sklearn / torch as the official scripts use them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from paraspeechclap.evaluation.classification import (
    class_embeddings,
    classification_metrics,
    predict_labels,
)
from paraspeechclap.evaluation.retrieval import (
    audio_to_text_ranks,
    dedupe_captions,
    lower_median,
    rank_metrics,
    recall_curve,
    retrieval_metrics,
    text_to_audio_ranks,
)

# ---------------------------------------------------------------- naive references (retrieval)


def _tie_key(rule: str, is_target: bool, index: int) -> tuple:
    if rule == "index":
        return (index,)
    if rule == "pessimistic":  # targets sort after everything tied with them
        return (1 if is_target else 0, index)
    return (0 if is_target else 1, index)  # optimistic


def naive_a2t(sim, gt, rule="index"):
    ranks = []
    for i, row in enumerate(sim):
        order = sorted(range(len(row)), key=lambda j: (-row[j],) + _tie_key(rule, j == gt[i], j))
        ranks.append(order.index(gt[i]) + 1)
    return ranks


def naive_t2a(sim, gt, rule="index"):
    n, u = len(sim), len(sim[0])
    ranks = []
    for c in range(u):
        order = sorted(range(n), key=lambda i, c=c: (-sim[i][c],) + _tie_key(rule, gt[i] == c, i))
        ranks.append(next(pos for pos, i in enumerate(order) if gt[i] == c) + 1)
    return ranks


def naive_dedupe(captions):
    unique = []
    for c in captions:
        if c not in unique:
            unique.append(c)
    return unique, [unique.index(c) for c in captions]


# ---------------------------------------------------------------- retrieval


def test_dedupe_first_seen_order_and_exact_strings():
    caps = ["b slow", "a fast", "b slow", "a fast.", "c", "a fast"]
    unique, gt = dedupe_captions(caps)
    assert unique == ["b slow", "a fast", "a fast.", "c"]  # "a fast." differs from "a fast"
    assert gt.tolist() == [0, 1, 0, 2, 3, 1]
    assert (unique, gt.tolist()) == tuple(naive_dedupe(caps))


def test_a2t_hand_case_with_ties():
    # clip 0: gt col 1 ties with col 0 and col 2 at 0.5; col 3 is higher.
    sim = np.array([[0.5, 0.5, 0.5, 0.9], [0.1, 0.2, 0.3, 0.0]])
    gt = np.array([1, 2])
    assert audio_to_text_ranks(sim, gt, "index").tolist() == [3, 1]  # col 3, col 0, then col 1
    assert audio_to_text_ranks(sim, gt, "pessimistic").tolist() == [4, 1]
    assert audio_to_text_ranks(sim, gt, "optimistic").tolist() == [2, 1]


def test_t2a_hand_case_duplicate_captions():
    # 4 clips, 2 unique captions; clips 0 and 2 carry caption 0, clips 1 and 3 caption 1.
    sim = np.array(
        [
            [0.2, 0.9],
            [0.8, 0.1],
            [0.7, 0.3],
            [0.7, 0.4],
        ]
    )
    gt = np.array([0, 1, 0, 1])
    # caption 0 column: 0.2, 0.8, 0.7, 0.7 -> order 1, 2, 3, 0; best hit clip 2 at position 2 (index rule).
    # caption 1 column: 0.9, 0.1, 0.3, 0.4 -> order 0, 3, ...; best hit clip 3 at position 2.
    assert text_to_audio_ranks(sim, gt, "index").tolist() == [2, 2]
    # clip 3 (non-hit for caption 0) ties the best hit clip 2 at 0.7: pessimistic puts it first.
    assert text_to_audio_ranks(sim, gt, "pessimistic").tolist() == [3, 2]
    assert text_to_audio_ranks(sim, gt, "optimistic").tolist() == [2, 2]


@pytest.mark.parametrize("rule", ["index", "pessimistic", "optimistic"])
@pytest.mark.parametrize("seed", range(6))
def test_ranks_match_naive_on_random_quantised_scores(rule, seed):
    rng = np.random.default_rng(seed)
    n, u = int(rng.integers(1, 15)), int(rng.integers(1, 8))
    u = min(u, n)
    gt = np.concatenate([np.arange(u), rng.integers(0, u, n - u)])  # every caption has a clip
    rng.shuffle(gt)
    sim = rng.integers(-3, 4, size=(n, u)) / 4.0  # few distinct values -> many ties
    assert audio_to_text_ranks(sim, gt, rule).tolist() == naive_a2t(sim.tolist(), gt.tolist(), rule)
    assert text_to_audio_ranks(sim, gt, rule).tolist() == naive_t2a(sim.tolist(), gt.tolist(), rule)


def test_tie_rules_bracket_index_rule():
    rng = np.random.default_rng(7)
    sim = rng.integers(0, 3, size=(40, 6)).astype(float)
    gt = rng.integers(0, 6, 40)
    lo, mid, hi = (audio_to_text_ranks(sim, gt, r) for r in ("optimistic", "index", "pessimistic"))
    assert np.all(lo <= mid) and np.all(mid <= hi) and np.any(lo < hi)


def test_no_ties_matches_official_torch_computation():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    sim = rng.standard_normal((50, 12)).astype(np.float32)
    gt = rng.integers(0, 12, 50)
    # official evaluate_retrieval.py style: argsort descending, position of the gt column, +1
    order = torch.argsort(torch.from_numpy(sim), dim=1, descending=True)
    official = (order == torch.from_numpy(gt)[:, None]).nonzero()[:, 1] + 1
    ours = audio_to_text_ranks(sim, gt)
    assert ours.tolist() == official.tolist()
    assert lower_median(ours) == float(torch.median(official.float()))


def test_lower_median_even_and_odd():
    assert lower_median(np.array([4, 1, 3, 2])) == 2.0  # numpy's median would give 2.5
    assert lower_median(np.array([5, 1, 3])) == 3.0
    assert lower_median(np.array([7])) == 7.0
    torch = pytest.importorskip("torch")
    for vals in ([4, 1, 3, 2], [10, 2, 2, 9, 1, 6]):
        assert lower_median(np.array(vals)) == float(torch.median(torch.tensor(vals)))


def test_rank_metrics_hand_case():
    ranks = np.array([1, 2, 6, 11, 1, 30])
    m = rank_metrics(ranks, ks=(1, 5, 10))
    assert m["R@1"] == pytest.approx(2 / 6)
    assert m["R@5"] == pytest.approx(3 / 6)
    assert m["R@10"] == pytest.approx(4 / 6)
    assert m["median_rank"] == 2.0  # sorted 1 1 2 6 11 30 -> lower middle = 2
    assert m["mean_rank"] == pytest.approx(51 / 6)
    assert m["count"] == 6


def test_recall_curve_matches_loop():
    ranks = np.array([1, 3, 3, 7, 12, 2])
    curve = recall_curve(ranks, 10)
    expected = [sum(r <= k for r in ranks) / len(ranks) for k in range(1, 11)]
    assert curve.shape == (10,)
    np.testing.assert_allclose(curve, expected)
    assert recall_curve(ranks, 1)[0] == pytest.approx(1 / 6)


def test_retrieval_metrics_perfect_and_reversed():
    sim = np.eye(4)
    gt = np.arange(4)
    m = retrieval_metrics(sim, gt)
    assert m["audio_to_text"]["R@1"] == 1.0 and m["text_to_audio"]["R@1"] == 1.0
    m = retrieval_metrics(-np.eye(4), gt)  # gt is always the lowest score
    assert m["audio_to_text"]["median_rank"] == 4.0 and m["audio_to_text"]["R@1"] == 0.0


def test_retrieval_rejects_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        audio_to_text_ranks(np.array([[np.nan, 1.0]]), np.array([0]))
    with pytest.raises(ValueError, match="tie rule"):
        audio_to_text_ranks(np.ones((1, 2)), np.array([0]), "random")
    with pytest.raises(ValueError, match="no matching clip"):
        text_to_audio_ranks(np.ones((2, 3)), np.array([0, 1]))


# ---------------------------------------------------------------- classification


def naive_classification(gold, pred, candidates):
    labels = sorted(candidates)
    pairs = [(g, p) for g, p in zip(gold, pred) if g in labels]
    rec, prec, f1 = {}, {}, {}
    for c in labels:
        tp = sum(1 for g, p in pairs if g == c and p == c)
        n_gold = sum(1 for g, _ in pairs if g == c)
        n_pred = sum(1 for _, p in pairs if p == c)
        rec[c] = tp / n_gold if n_gold else 0.0
        prec[c] = tp / n_pred if n_pred else 0.0
        f1[c] = 2 * prec[c] * rec[c] / (prec[c] + rec[c]) if prec[c] + rec[c] else 0.0
    return {
        "accuracy": sum(g == p for g, p in pairs) / len(pairs),
        "uar": sum(rec.values()) / len(labels),
        "macro_f1": sum(f1.values()) / len(labels),
        "recall": rec,
        "precision": prec,
        "excluded": len(gold) - len(pairs),
    }


def test_classification_hand_case():
    candidates = ["happy", "angry", "sad"]  # unsorted on purpose; "sad" never in gold
    gold = ["angry", "angry", "happy", "happy", "happy", "zzz", "angry"]
    pred = ["angry", "happy", "happy", "sad", "happy", "angry", "angry"]
    m = classification_metrics(gold, pred, candidates)
    assert m["labels"] == ["angry", "happy", "sad"]
    assert m["count"] == 6 and m["excluded"] == 1 and m["excluded_labels"] == {"zzz": 1}
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["uar"] == pytest.approx(4 / 9)  # (2/3 + 2/3 + 0) / 3: absent "sad" counts as 0
    assert m["macro_f1"] == pytest.approx(22 / 45)  # (0.8 + 2/3 + 0) / 3
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 2, 1], [0, 0, 0]]
    assert m["per_class"]["angry"]["precision"] == 1.0
    assert m["per_class"]["happy"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["sad"] == {"recall": 0.0, "precision": 0.0, "f1": 0.0, "support": 0, "predicted": 1}


@pytest.mark.parametrize("seed", range(8))
def test_classification_matches_naive_and_sklearn(seed):
    rng = np.random.default_rng(seed)
    candidates = ["c", "a", "e", "b", "d"][: int(rng.integers(2, 6))]
    pool = candidates + ["x", "y"]  # x, y: gold labels that are not candidates
    n = int(rng.integers(5, 40))
    gold = [pool[i] for i in rng.integers(0, len(pool), n)]
    gold[0] = candidates[0]  # at least one evaluable clip
    pred = [candidates[i] for i in rng.integers(0, len(candidates), n)]
    m = classification_metrics(gold, pred, candidates)
    ref = naive_classification(gold, pred, candidates)
    for key in ("accuracy", "uar", "macro_f1"):
        assert m[key] == pytest.approx(ref[key])
        assert 0.0 <= m[key] <= 1.0
    assert m["excluded"] == ref["excluded"]
    for c in candidates:
        assert m["per_class"][c]["recall"] == pytest.approx(ref["recall"][c])
        assert m["per_class"][c]["precision"] == pytest.approx(ref["precision"][c])
    skm = pytest.importorskip("sklearn.metrics")
    keep = [i for i, g in enumerate(gold) if g in candidates]
    g, p = [gold[i] for i in keep], [pred[i] for i in keep]
    labels = sorted(candidates)
    uar = skm.recall_score(g, p, average="macro", labels=labels, zero_division=0)
    f1 = skm.f1_score(g, p, average="macro", labels=labels, zero_division=0)
    assert m["uar"] == pytest.approx(uar) and m["macro_f1"] == pytest.approx(f1)
    assert m["uar_present"] == pytest.approx(skm.balanced_accuracy_score(g, p))
    assert m["confusion_matrix"] == skm.confusion_matrix(g, p, labels=labels).tolist()


def test_uar_present_ignores_classes_absent_from_gold():
    # One corpus with only female speakers: the official UAR halves a perfect score, uar_present does not.
    m = classification_metrics(["female"] * 4, ["female", "female", "female", "male"], ["male", "female"])
    assert m["uar"] == pytest.approx(0.375) and m["uar_present"] == pytest.approx(0.75)


def test_classification_all_excluded_raises():
    with pytest.raises(ValueError, match="no gold label"):
        classification_metrics(["x"], ["a"], ["a", "b"])


def test_predict_labels_argmax_and_tie_to_first_listed():
    scores = np.array([[0.1, 0.9, 0.3], [0.5, 0.5, 0.2], [0.0, 0.0, 0.7]])
    assert predict_labels(scores, ["b", "a", "c"]) == ["a", "b", "c"]


def test_class_embeddings_average_of_normalised_prompts():
    prompts = [
        np.array([[3.0, 0.0], [0.0, 1.0]]),  # normalised: (1,0), (0,1) -> mean (.5,.5) -> (1,1)/sqrt2
        np.array([[0.0, -2.0]]),
    ]
    emb = class_embeddings(prompts)
    assert emb.dtype == np.float32 and emb.shape == (2, 2)
    s = 1 / math.sqrt(2)
    np.testing.assert_allclose(emb, [[s, s], [0.0, -1.0]], atol=1e-6)


def test_score_attribute_set_among_a_subset_of_candidates(monkeypatch):
    """``among`` restricts both the choice and the clips: hand-worked on a fixed score matrix."""
    from paraspeechclap.data.attributes import get_attribute_set
    from paraspeechclap.evaluation import classification

    cands = list(get_attribute_set("texture").candidates)
    among = ["raspy", "husky"]
    gold = ["husky", "raspy", "raspy", "silky"]  # the silky clip has no place among them
    scores = np.zeros((3, len(cands)))  # rows of the clips kept (silky's is never scored)
    scores[:, cands.index("silky")] = 9.0  # best overall, but not a choice
    scores[0, cands.index("husky")], scores[0, cands.index("raspy")] = 2.0, 1.0  # husky: right
    scores[1, cands.index("husky")], scores[1, cands.index("raspy")] = 2.0, 1.0  # husky: wrong
    scores[2, cands.index("raspy")] = 3.0  # raspy: right
    every = np.vstack([scores, scores[:1]])  # the silky clip too, when every candidate is a choice
    monkeypatch.setattr(classification, "attribute_set_scores",
                        lambda model, audio, aset, ensemble: scores if len(audio) == 3 else every)
    rows = [{"classification_texture": g} for g in gold]
    m = classification.score_attribute_set(None, np.zeros((4, 2)), rows, "texture", among=among)
    assert m["labels"] == ["husky", "raspy"] and m["count"] == 3 and m["chance"] == 0.5  # sorted, as the confusion
    assert m["predicted"] == ["husky", "husky", "raspy", None]
    assert m["uar_present"] == pytest.approx((1.0 + 0.5) / 2)  # husky 1/1, raspy 1/2
    assert m["confusion"] == [[1, 0], [1, 1]]  # rows gold husky, raspy; columns predicted, in labels order
    full = classification.score_attribute_set(None, np.zeros((4, 2)), rows, "texture")
    assert full is not None and full["labels"] == sorted(cands)  # without among: every candidate
    assert full["predicted"] == ["silky"] * 4
