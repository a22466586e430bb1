"""Best-of-N reranking: reward formulas, ranking rules, the scorer and the Python API."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from paraspeechclap.errors import AudioError, InputError
from paraspeechclap.reranking import (
    RewardConfig,
    StyleScorer,
    best_of_n,
    make_pairs,
    rank_candidates,
    rerank,
    zscore,
)
from paraspeechclap.reranking.scorer import PromptScores, issue_kind
from paraspeechclap.testing import tone


class FakeScorer:
    """Known scores per candidate name (paths: their file name; anything else: the item itself)."""

    model_id, checksum = "fake", "0" * 64

    def __init__(self, scores: dict):
        self.scores = scores
        self.calls = 0

    def score_many(self, prompts, candidate_lists, progress=False):
        self.calls += 1
        return [PromptScores(np.array([self.scores[str(c).rsplit("/", 1)[-1]] for c in cands], dtype=float))
                for cands in candidate_lists]


# -- reward -------------------------------------------------------------------------------------
def test_zscore_composite_matches_hand_computation():
    style, wer = np.array([0.30, 0.20, 0.25]), np.array([0.5, 0.0, 0.1])
    # by hand: z(style) = [1, -1, 0] * sqrt(3/2); z(wer): mean 0.2, std sqrt(0.14/3)
    zs = np.array([1.0, -1.0, 0.0]) * math.sqrt(1.5)
    zw = np.array([0.3, -0.2, -0.1]) / math.sqrt(0.14 / 3)
    np.testing.assert_allclose(zscore(style), zs, atol=1e-12)
    ranking = rank_candidates(style, wer, RewardConfig(wer_weight=1.0))
    np.testing.assert_allclose(ranking.reward, zs - zw, atol=1e-12)
    np.testing.assert_allclose(ranking.reward, [-0.163985, -0.298925, 0.462910], atol=1e-5)
    assert ranking.order == [2, 0, 1] and ranking.best == 2
    # weight 0.25 keeps the style winner: 1.2247 - 0.25*1.3887 > 0 - 0.25*(-0.4629)
    assert rank_candidates(style, wer, RewardConfig(wer_weight=0.25)).order[0] == 0
    # the default reward is the style score itself
    assert rank_candidates(style, wer).order == [0, 2, 1]


def test_zscore_constant_and_unscored():
    np.testing.assert_array_equal(zscore(np.array([2.0, 2.0, 2.0])), [0.0, 0.0, 0.0])
    z = zscore(np.array([1.0, np.nan, 3.0]))
    assert np.isnan(z[1]) and z[0] == -1.0 and z[2] == 1.0
    # an unscored (-inf) candidate is left out of the statistics and stays last
    r = rank_candidates(np.array([0.1, -np.inf, 0.3]), np.array([0.0, 0.0, 0.5]), RewardConfig(wer_weight=1.0))
    assert r.order[-1] == 1 and r.reward[1] == -np.inf
    np.testing.assert_allclose(r.reward[[0, 2]], [-1 + 1, 1 - 1], atol=1e-12)


def test_threshold_ranks_failing_candidates_after_passing_ones():
    style, wer = np.array([0.9, 0.5, 0.7, 0.6]), np.array([0.4, 0.1, 0.05, 0.3])
    r = rank_candidates(style, wer, RewardConfig(wer_threshold=0.2))
    assert r.order == [2, 1, 0, 3] and not r.fallback
    assert r.passes.tolist() == [False, True, True, False]
    # nobody passes: fall back to the style score over all candidates
    r = rank_candidates(style, wer, RewardConfig(wer_threshold=0.01))
    assert r.order == [0, 2, 3, 1] and r.fallback
    # an unknown WER never passes
    r = rank_candidates(style, np.array([np.nan, 0.1, 0.05, 0.3]), RewardConfig(wer_threshold=0.2))
    assert r.order == [2, 1, 0, 3]
    # threshold and weight combine: inside the passing group the z-score reward decides
    r = rank_candidates(style, wer, RewardConfig(wer_threshold=0.2, wer_weight=10.0))
    assert set(r.order[:2]) == {1, 2} and r.order[0] == 2


def test_reward_config_validation():
    with pytest.raises(InputError, match="wer-weight"):
        RewardConfig(wer_weight=-1)
    with pytest.raises(InputError, match="wer-threshold"):
        RewardConfig(wer_threshold=float("nan"))
    with pytest.raises(InputError, match="word error rates"):
        rank_candidates(np.array([0.1, 0.2]), None, RewardConfig(wer_threshold=0.1))


def test_ties_go_to_the_lowest_index_and_unscored_go_last():
    assert rank_candidates(np.array([0.5, 0.7, 0.7, 0.7])).order == [1, 2, 3, 0]
    r = rank_candidates(np.array([-np.inf, 0.1, -np.inf, -0.5]))
    assert r.order == [1, 3, 0, 2] and r.best == 1
    assert rank_candidates(np.array([-np.inf, -np.inf])).best is None
    fake = FakeScorer({"a": 0.2, "b": 0.9, "c": 0.9, "d": 0.9})
    ranked = rerank(fake, "a deep voice", ["a", "b", "c", "d"])
    assert [c for c, _ in ranked] == ["b", "c", "d", "a"]


# -- scorer and API with the tiny model -----------------------------------------------------------
def _write(path, wav, sr=16000):
    sf.write(path, wav, sr)
    return str(path)


def test_rerank_scores_match_independent_embeddings_and_silent_is_last(tiny, tmp_path, monkeypatch):
    clips = [_write(tmp_path / f"{i}.wav", tone(0.6 + 0.2 * i, 110.0 * (i + 1), seed=i)) for i in range(3)]
    silent = _write(tmp_path / "silent.wav", np.zeros(8000, dtype=np.float32))
    prompt = "A deep, slow male voice."
    expected = tiny.embed_audio(clips) @ tiny.embed_text([prompt])[0]  # (3,)
    calls = {"text": 0, "audio": 0}
    for name in ("embed_text", "embed_audio"):
        orig = getattr(tiny, name)

        def wrapped(*a, _orig=orig, _name=name, **k):
            calls["text" if _name == "embed_text" else "audio"] += 1
            return _orig(*a, **k)

        monkeypatch.setattr(tiny, name, wrapped)
    ranked = rerank(tiny, prompt, [clips[0], silent, clips[1], clips[2]])
    assert calls == {"text": 1, "audio": 1}  # one text embedding, one batched audio call
    assert ranked[-1] == (silent, -math.inf)
    got = dict(ranked)
    np.testing.assert_allclose([got[c] for c in clips], expected, atol=1e-5)
    assert [c for c, _ in ranked[:3]] == [clips[j] for j in np.argsort(-expected, kind="stable")]


def test_unreadable_candidate_raises_or_is_skipped(tiny, tmp_path):
    good = _write(tmp_path / "good.wav", tone(0.5, 200.0))
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    with pytest.raises(AudioError, match="junk.wav"):
        rerank(tiny, "a fast voice", [good, str(junk)])
    ranked = rerank(tiny, "a fast voice", [str(junk), good], skip_bad=True)
    assert [c for c, _ in ranked] == [good]


def test_issue_kinds(tmp_path):
    empty = _write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32))
    silent = _write(tmp_path / "silent.wav", np.zeros(1600, dtype=np.float32))
    short = _write(tmp_path / "short.wav", tone(0.005, 200.0))  # 80 samples < receptive field
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF....")
    assert [issue_kind(p, 400) for p in (empty, silent, short)] == ["silent"] * 3
    assert issue_kind(str(junk), 400) == "unreadable"
    assert issue_kind(str(tmp_path / "nope.wav"), 400) == "unreadable"
    assert issue_kind(np.array([0.1, np.nan] * 400, dtype=np.float32), 400) == "unreadable"


def test_scorer_batches_prompts_in_blocks(tiny):
    waves = [tone(0.5, 100.0 + 40 * i, seed=i) for i in range(7)]
    lists = [waves[:3], waves[3:5], waves[5:]]
    prompts = ["a deep voice", "a high-pitched voice", "a whispered voice"]
    out = StyleScorer(tiny, block_clips=5).score_many(prompts, lists)
    text = tiny.embed_text(prompts)
    for p, (cands, ps) in enumerate(zip(lists, out)):
        np.testing.assert_allclose(ps.scores, tiny.embed_audio(cands) @ text[p], atol=1e-5)
        assert ps.issues == []


def test_best_of_n_reports_missing_and_needs_wer():
    fake = FakeScorer({"a": 0.1, "b": 0.4})
    sel = best_of_n(fake, ["p"], [["a", None, "b"]], names=[["a", "x/missing.wav", "b"]])[0]
    assert sel.best == 2 and [i.kind for i in sel.issues] == ["missing"]
    assert "x/missing.wav" in sel.issues[0].message and sel.scores[1] == -np.inf
    with pytest.raises(InputError, match="word error rates"):
        best_of_n(fake, ["p"], [["a"]], config=RewardConfig(wer_weight=1.0))


# -- preference pairs -------------------------------------------------------------------------------
def _selection(scores, wer=None, config=None):
    names = [f"c{k}" for k in range(len(scores))]
    fake = FakeScorer(dict(zip(names, scores)))
    w = None if wer is None else [np.array(wer, dtype=float)]
    return best_of_n(fake, ["a prompt"], [names], w, config)


def test_pairs_best_vs_rest_and_worst_with_margin():
    sels = _selection([0.50, 0.80, 0.75, -np.inf, 0.40])
    pairs = make_pairs(sels, "best-vs-rest", margin=0.1)
    # winner c1 (0.80); c2 is only 0.05 below; c3 has no score
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("c1", "c0"), ("c1", "c4")]
    assert pairs[0]["margin"] == pytest.approx(0.30) and pairs[1]["margin"] == pytest.approx(0.40)
    assert pairs[0]["chosen_idx"] == 2 and pairs[0]["rejected_idx"] == 1 and pairs[0]["reason"] == "margin"
    assert [(p["chosen"], p["rejected"]) for p in make_pairs(sels, "best-vs-worst")] == [("c1", "c4")]
    assert len(make_pairs(sels, "best-vs-rest")) == 3
    # a tie with the winner is not a preference
    assert make_pairs(_selection([0.5, 0.5]), "best-vs-rest") == []
    assert make_pairs(_selection([0.5, -np.inf]), "best-vs-rest") == []
    with pytest.raises(InputError, match="pair rule"):
        make_pairs(sels, "everything")


def test_pairs_with_threshold_reject_failing_candidates():
    sels = _selection([0.9, 0.5, 0.7], wer=[0.6, 0.1, 0.0], config=RewardConfig(wer_threshold=0.2))
    pairs = make_pairs(sels, "best-vs-rest", margin=0.1)
    # winner c2 (passes); c1 passes but is 0.2 below; c0 fails the threshold although its style is higher
    assert [(p["rejected"], p["reason"]) for p in pairs] == [("c1", "margin"), ("c0", "wer")]
    assert pairs[1]["margin"] == pytest.approx(-0.2) and pairs[1]["rejected_wer"] == 0.6


def test_quality_gate_tiers_before_wer_and_reward():
    from paraspeechclap.reranking import RewardConfig, rank_candidates

    style = np.array([0.9, 0.5, 0.7, -np.inf])
    ok = np.array([False, True, True, True])
    # the failing candidate ranks after every passing one despite the best reward; unscored stays last
    assert rank_candidates(style, quality_ok=ok).order == [2, 1, 0, 3]
    wer = np.array([0.0, 0.5, 0.0, 0.0])
    # the gate comes before the WER threshold: 2 (passes both), 1 (fails WER), 0 (fails the gate)
    assert rank_candidates(style, wer, RewardConfig(wer_threshold=0.2), ok).order == [2, 1, 0, 3]
    assert rank_candidates(style).order == [0, 2, 1, 3]


def test_quality_gate_in_best_of_n_with_a_fake_check(tiny):
    """best_of_n with a gate: the verdicts reach the selection, its summary and the ranking."""
    from paraspeechclap.reranking import best_of_n, summary_entry
    from paraspeechclap.reranking.quality import GateVerdict, QualityGate

    class Loud(QualityGate):
        def apply(self, x):  # fails clips louder than 0.5 peak: a known verdict for the test (no trimming)
            return GateVerdict(bool(np.abs(x).max() < 0.5), [] if np.abs(x).max() < 0.5 else ["clipping"], {}), x

    t = np.arange(16000) / 16000
    quiet = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    loud = (0.9 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    sel = best_of_n(tiny, ["p"], [[loud, quiet]], gate=Loud(trim=False))[0]
    assert sel.best == 1 and [v.ok for v in sel.quality] == [False, True]
    entry = summary_entry(sel)
    assert entry["failed_quality_gate"] == [1] and entry["quality"][1]["ok"]
    assert best_of_n(tiny, ["p"], [[loud, quiet]])[0].quality is None


def test_quality_gate_apply_is_check_and_prepare_in_one_pass():
    from pathlib import Path

    from paraspeechclap.audio import load_audio
    from paraspeechclap.reranking import QualityGate

    x = load_audio(str(Path(__file__).resolve().parents[1] / "examples" / "thorsten_angry.flac"))
    padded = np.concatenate([np.zeros(16000, np.float32), x, np.zeros(8000, np.float32)])
    for gate in (QualityGate(), QualityGate(trim=False, max_edge_silence_s=0.5)):
        verdict, prepared = gate.apply(padded)
        assert verdict.measures == gate.measures(padded) and verdict.reasons == gate.reasons(verdict.measures)
        np.testing.assert_array_equal(prepared, gate.prepare(padded))
    assert len(QualityGate().apply(padded)[1]) < len(padded) - 20000  # the pads were cut to 0.1 s
    assert QualityGate(max_edge_silence_s=0.5).apply(padded)[0].reasons == ["silence"]


def test_resolve_gate_with_and_without_a_threshold():
    from paraspeechclap.reranking import resolve_gate
    from paraspeechclap.reranking.quality import QualityGate

    assert resolve_gate(True) == QualityGate() and resolve_gate(True).min_snr_db == 6.0
    assert resolve_gate(True, 12.0) == QualityGate(min_snr_db=12.0)
    assert resolve_gate(False) is None and resolve_gate(None) is None
    own = QualityGate(max_clipping_share=None)
    assert resolve_gate(own) is own
    with pytest.raises(ValueError, match="quality_gate=True"):
        resolve_gate(False, 12.0)
