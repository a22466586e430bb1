"""Loss functions against hand-written references (explicit loops, written independently here)."""

from __future__ import annotations

import math
import random

import pytest
import torch

from paraspeechclap.errors import ConfigError
from paraspeechclap.losses import (
    INIT_LOG_LOGIT_SCALE,
    ContrastiveLoss,
    MultiTaskLoss,
    TagClassificationLoss,
    clamp_logit_scale_,
    draw_tag_prompts,
)


def _cosine_matrix(a: list[list[float]], b: list[list[float]]) -> list[list[float]]:
    def norm(v: list[float]) -> float:
        return math.sqrt(sum(x * x for x in v))

    return [[sum(x * y for x, y in zip(u, v, strict=False)) / (norm(u) * norm(v)) for v in b] for u in a]


def _reference_infonce(audio: list[list[float]], text: list[list[float]], scale: float) -> float:
    """Symmetric InfoNCE with loops: mean over rows of -log softmax at the diagonal, both ways."""
    cos = _cosine_matrix(audio, text)
    n = len(audio)

    def row_nll(logits: list[float], target: int) -> float:
        m = max(logits)
        log_z = m + math.log(sum(math.exp(x - m) for x in logits))
        return log_z - logits[target]

    a2t = sum(row_nll([scale * cos[i][j] for j in range(n)], i) for i in range(n)) / n
    t2a = sum(row_nll([scale * cos[i][j] for i in range(n)], j) for j in range(n)) / n
    return (a2t + t2a) / 2


def _reference_dloss_dscale(audio: list[list[float]], text: list[list[float]], scale: float) -> float:
    """Analytic dL/ds: for a row with logits s*c, d(-log softmax_i)/ds = sum_j p_j c_j - c_i."""
    cos = _cosine_matrix(audio, text)
    n = len(audio)

    def row_grad(c: list[float], target: int) -> float:
        w = [math.exp(scale * x) for x in c]
        z = sum(w)
        return sum(wj / z * cj for wj, cj in zip(w, c, strict=False)) - c[target]

    a2t = sum(row_grad([cos[i][j] for j in range(n)], i) for i in range(n)) / n
    t2a = sum(row_grad([cos[i][j] for i in range(n)], j) for j in range(n)) / n
    return (a2t + t2a) / 2


def _reference_tag_bce(audio: list[list[float]], tag_emb: list[list[float]], tags: list, vocab: list[str]) -> float:
    """Mean BCE over (tagged samples x tags) with raw cosine logits; untagged samples skipped."""
    cos = _cosine_matrix(audio, tag_emb)
    total, count = 0.0, 0
    for i, sample_tags in enumerate(tags):
        if not sample_tags:
            continue
        for m, tag in enumerate(vocab):
            y = 1.0 if tag in sample_tags else 0.0
            p = 1.0 / (1.0 + math.exp(-cos[i][m]))
            total += -(y * math.log(p) + (1 - y) * math.log(1 - p))
            count += 1
    return total / count if count else 0.0


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    audio = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    text = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    # Make one pair strongly aligned so the loss is not near its chance value for every row.
    text[2] = audio[2] + 0.1 * text[2]
    return audio, text


@pytest.mark.parametrize("scale", [1.0, 14.285714, 100.0])
def test_contrastive_matches_loop_reference(batch, scale: float) -> None:
    audio, text = batch
    loss = ContrastiveLoss()(audio * 3.0, text, torch.tensor(scale, dtype=torch.float64))
    expected = _reference_infonce(audio.tolist(), text.tolist(), scale)
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_contrastive_gradient_wrt_logit_scale(batch) -> None:
    audio, text = batch
    log_scale = torch.tensor(INIT_LOG_LOGIT_SCALE, dtype=torch.float64, requires_grad=True)
    ContrastiveLoss()(audio, text, log_scale.exp()).backward()
    scale = math.exp(INIT_LOG_LOGIT_SCALE)
    # Chain rule through exp: dL/dlog_s = s * dL/ds.
    expected = scale * _reference_dloss_dscale(audio.tolist(), text.tolist(), scale)
    assert log_scale.grad.item() == pytest.approx(expected, rel=1e-9)
    assert abs(expected) > 1e-3  # the reference gradient is not trivially zero


def test_contrastive_gradient_wrt_embeddings_matches_finite_differences(batch) -> None:
    audio, text = batch
    audio = audio.clone().requires_grad_(True)
    ContrastiveLoss()(audio, text, 10.0).backward()
    eps = 1e-6
    for i, j in [(0, 0), (2, 3), (5, 4)]:
        plus, minus = audio.detach().clone(), audio.detach().clone()
        plus[i, j] += eps
        minus[i, j] -= eps
        fd = (
            _reference_infonce(plus.tolist(), text.tolist(), 10.0)
            - _reference_infonce(minus.tolist(), text.tolist(), 10.0)
        ) / (2 * eps)
        assert audio.grad[i, j].item() == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_contrastive_output_dict_and_perfect_alignment() -> None:
    emb = torch.eye(4, dtype=torch.float64)
    out = ContrastiveLoss()(emb, emb, 100.0, output_dict=True)
    assert isinstance(out, dict) and set(out) == {"contrastive_loss"}
    # Orthonormal matched pairs at scale 100: each row's log-softmax misses by 3*exp(-100) ~ 0.
    assert out["contrastive_loss"].item() < 1e-40


def test_local_loss_without_gather_with_grad_is_refused() -> None:
    with pytest.raises(ValueError, match="gather_with_grad"):
        ContrastiveLoss(rank=0, world_size=2, local_loss=True)
    with pytest.raises(ConfigError):
        ContrastiveLoss(local_loss=True, gather_with_grad=False)
    ContrastiveLoss(rank=1, world_size=2, local_loss=True, gather_with_grad=True)  # allowed


def test_clamp_logit_scale_in_place() -> None:
    assert INIT_LOG_LOGIT_SCALE == pytest.approx(2.6593, abs=1e-4)
    for value, expected in [(5.0, math.log(100.0)), (-0.5, 0.0), (2.0, 2.0)]:
        param = torch.nn.Parameter(torch.tensor(value))
        out = clamp_logit_scale_(param)
        assert out is param and param.grad_fn is None and param.requires_grad
        assert param.item() == pytest.approx(expected, abs=1e-6)
    param = torch.nn.Parameter(torch.tensor(4.0))
    clamp_logit_scale_(param, max_scale=20.0)
    assert math.exp(param.item()) == pytest.approx(20.0, rel=1e-6)


VOCAB = ["deep", "husky", "shrill", "soft"]


def _tag_batch() -> tuple[torch.Tensor, torch.Tensor, list]:
    gen = torch.Generator().manual_seed(1)
    audio = torch.randn(5, 6, generator=gen, dtype=torch.float64)
    tag_emb = torch.randn(len(VOCAB), 6, generator=gen, dtype=torch.float64)
    tags = [["deep", "soft"], None, ["shrill"], [], ["husky", "deep", "shrill"]]
    return audio, tag_emb, tags


def test_tag_bce_matches_reference_and_skips_untagged() -> None:
    audio, tag_emb, tags = _tag_batch()
    loss = TagClassificationLoss(VOCAB)(audio * 7.0, tag_emb, tags)
    expected = _reference_tag_bce(audio.tolist(), tag_emb.tolist(), tags, VOCAB)
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    # Changing an untagged sample's embedding must not change the loss.
    moved = audio.clone()
    moved[1] = -moved[1] + 3.0
    moved[3] = 0.5 * moved[0]
    assert TagClassificationLoss(VOCAB)(moved, tag_emb, tags).item() == pytest.approx(expected, rel=1e-10)


def test_tag_bce_normalizes_tag_spelling_and_ignores_unknown_tags() -> None:
    audio, tag_emb, _ = _tag_batch()
    messy = [[" Deep", "SOFT "], None, "shrill", [], ["husky", "deep", "shrill", "not-a-tag"]]
    clean = [["deep", "soft"], None, ["shrill"], [], ["husky", "deep", "shrill"]]
    loss_fn = TagClassificationLoss(VOCAB)
    assert loss_fn(audio, tag_emb, messy).item() == pytest.approx(loss_fn(audio, tag_emb, clean).item(), rel=1e-12)


def test_tag_bce_no_tagged_sample_is_zero_with_gradient_path() -> None:
    audio, tag_emb, _ = _tag_batch()
    audio.requires_grad_(True)
    tag_emb.requires_grad_(True)
    loss = TagClassificationLoss(VOCAB)(audio, tag_emb, [None, [], None, [], []])
    assert loss.item() == 0.0
    loss.backward()
    assert torch.count_nonzero(audio.grad) == 0 and torch.count_nonzero(tag_emb.grad) == 0


def test_multitask_is_contrastive_plus_weighted_classification() -> None:
    audio, tag_emb, tags = _tag_batch()
    text = torch.randn(5, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out = MultiTaskLoss(VOCAB, classification_weight=0.5)(audio, text, 14.0, tag_emb, tags, output_dict=True)
    assert set(out) == {"contrastive_loss", "classification_loss"}
    assert out["contrastive_loss"].item() == pytest.approx(_reference_infonce(audio.tolist(), text.tolist(), 14.0))
    bce = _reference_tag_bce(audio.tolist(), tag_emb.tolist(), tags, VOCAB)
    assert out["classification_loss"].item() == pytest.approx(0.5 * bce)
    total = MultiTaskLoss(VOCAB, classification_weight=0.5)(audio, text, 14.0, tag_emb, tags)
    assert total.item() == pytest.approx(sum(v.item() for k, v in out.items() if k.endswith("_loss")))


def test_draw_tag_prompts_picks_paraphrase_or_default() -> None:
    paraphrases = {
        "deep": ["A person is speaking in a low-toned style", "A person is speaking in a sonorous style"],
        "soft": ["A person is speaking in a gentle style"],
    }
    template = "A person is speaking in a {} style."
    seen = set()
    for seed in range(20):
        prompts = draw_tag_prompts(VOCAB, paraphrases, random.Random(seed), template)
        assert len(prompts) == len(VOCAB)
        assert prompts[0] in paraphrases["deep"]
        assert prompts[1] == "A person is speaking in a husky style."
        assert prompts[2] == "A person is speaking in a shrill style."
        assert prompts[3] == "A person is speaking in a gentle style"
        seen.add(prompts[0])
    assert seen == set(paraphrases["deep"])  # both paraphrases get drawn over 20 seeds
    a = draw_tag_prompts(VOCAB, paraphrases, random.Random(7), template)
    assert a == draw_tag_prompts(VOCAB, paraphrases, random.Random(7), template)
