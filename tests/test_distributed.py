"""Distributed helpers (single-process no-ops) and a 2-process gloo run of the losses.

The 2-process test checks the exact gradient relations documented in ``ContrastiveLoss`` /
``docs/training_objectives.md``: with an autograd gather, the rank-average of the gradients (what
DDP produces) equals the 1-process gradient on the concatenated batch; in the official no-grad
mode, the sum over ranks of the gradients that flow through the gathered embeddings equals the
1-process gradient, while replicated inputs (logit scale, tag-prompt embeddings) receive the full
gradient on every rank.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from paraspeechclap import distributed as D
from paraspeechclap.losses import INIT_LOG_LOGIT_SCALE, ContrastiveLoss, MultiTaskLoss, draw_tag_prompts
from paraspeechclap.losses.gather import gather_features, gather_objects

WORLD = 2
VOCAB = ["deep", "husky", "shrill", "soft"]
TAGS = [["deep"], None, ["soft", "husky"], ["shrill"], [], ["deep", "shrill"]]  # global batch of 6
PARAPHRASES = {"deep": ["low", "sonorous", "booming"], "soft": ["gentle", "quiet"]}
MODES = {
    "official": {"gather_with_grad": False, "local_loss": False},
    "with_grad": {"gather_with_grad": True, "local_loss": False},
    "local": {"gather_with_grad": True, "local_loss": True},
}


# ----------------------------------------------------------------------------- single process


def test_world_info_from_env() -> None:
    assert D.world_info_from_env({}) == (0, 0, 1)
    info = D.world_info_from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"})
    assert (info.rank, info.local_rank, info.world_size) == (3, 1, 4)
    with pytest.raises(ValueError):
        D.world_info_from_env({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(ValueError):
        D.world_info_from_env({"RANK": "x", "WORLD_SIZE": "2"})


def test_helpers_are_noops_without_process_group(monkeypatch) -> None:
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    info = D.init_distributed()
    assert (info.rank, info.world_size, info.backend, info.is_main) == (0, 1, None, True)
    assert not dist.is_initialized()
    assert (D.rank(), D.world_size(), D.is_main(), D.is_distributed()) == (0, 1, True, False)
    D.barrier()
    assert D.all_gather_object({"a": 1}) == [{"a": 1}]
    assert D.broadcast_object("x") == "x"
    t = torch.tensor([1.0, 2.0])
    assert torch.equal(D.all_reduce_mean(t), t)
    assert D.average_metrics({"loss": 0.5}, count=3) == {"loss": 0.5}
    x = torch.randn(3, 2)
    assert gather_features(x, 0, 1, with_grad=True) is x
    assert gather_objects(["a", None], 1) == ["a", None]


# ----------------------------------------------------------------------------- two processes


class _TinyTowers(nn.Module):
    """Two linear towers and a log scale: enough to see which parameters receive which gradient."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.audio = nn.Linear(4, 3, dtype=torch.float64)
        self.text = nn.Linear(5, 3, dtype=torch.float64)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
        self.log_logit_scale = nn.Parameter(torch.tensor(INIT_LOG_LOGIT_SCALE, dtype=torch.float64))


def _global_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(123)
    audio_in = torch.randn(len(TAGS), 4, generator=gen, dtype=torch.float64)
    text_in = torch.randn(len(TAGS), 5, generator=gen, dtype=torch.float64)
    tag_in = torch.randn(len(VOCAB), 5, generator=gen, dtype=torch.float64)
    return audio_in, text_in, tag_in


def _param_grads(kind: str, rank: int, world: int, mode: dict, detach: str | None = None) -> dict:
    """Loss values and parameter gradients for this rank's half (or the full batch if world=1).

    ``detach="gathered"`` blocks the gradient through the audio/text embeddings (the gathered
    inputs); ``detach="replicated"`` blocks it through the logit scale and tag embeddings.
    """
    model = _TinyTowers()
    audio_in, text_in, tag_in = _global_inputs()
    b = len(TAGS) // world
    rows = slice(rank * b, (rank + 1) * b)
    audio_emb, text_emb = model.audio(audio_in[rows]), model.text(text_in[rows])
    scale, tag_emb = model.log_logit_scale.exp(), model.text(tag_in)
    if detach == "gathered":
        audio_emb, text_emb = audio_emb.detach(), text_emb.detach()
    elif detach == "replicated":
        scale, tag_emb = scale.detach(), tag_emb.detach()
    if kind == "contrastive":
        losses = ContrastiveLoss(rank, world, **mode)(audio_emb, text_emb, scale, output_dict=True)
    else:
        loss_fn = MultiTaskLoss(VOCAB, rank, world, **mode)
        losses = loss_fn(audio_emb, text_emb, scale, tag_emb, TAGS[rows], output_dict=True)
    sum(losses.values()).backward()
    grads = {n: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for n, p in model.named_parameters()}
    return {"losses": {k: v.item() for k, v in losses.items()}, "grads": grads}


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD)
    )
    torch.set_num_threads(1)
    info = D.init_distributed(backend="gloo")
    try:
        b = len(TAGS) // WORLD
        audio_in = _global_inputs()[0]
        local = audio_in[rank * b : (rank + 1) * b].clone().requires_grad_(True)
        gathered = gather_features(local, rank, WORLD, with_grad=False)
        weights = torch.arange(gathered.numel(), dtype=gathered.dtype).view_as(gathered)
        (gathered * weights).sum().backward()  # no-grad gather: only the local rows reach `local`
        out = {
            "info": (info.rank, info.local_rank, info.world_size, info.backend, str(info.device)),
            "helpers": (D.rank(), D.world_size(), D.is_main(), D.is_distributed()),
            "all_gather_object": D.all_gather_object({"r": rank}),
            "broadcast_object": D.broadcast_object(f"from {rank}"),
            "all_reduce_mean": D.all_reduce_mean(torch.tensor([rank + 1.0, 10.0 * rank])),
            "average_metrics": D.average_metrics({"a": float(rank), "b": 1.0}, count=rank + 1),
            "prompts": draw_tag_prompts(VOCAB, PARAPHRASES, random.Random(100 + rank), "a {} voice"),
            "gathered": gathered.detach(),
            "local_grad": local.grad,
            "tags": gather_objects(TAGS[rank * b : (rank + 1) * b], WORLD),
            "runs": {
                (kind, name, detach): _param_grads(kind, rank, WORLD, mode, detach)
                for kind in ("contrastive", "multitask")
                for name, mode in MODES.items()
                for detach in ((None, "gathered", "replicated") if name == "official" else (None,))
            },
        }
        D.barrier()
        torch.save(out, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_rank_results(tmp_path_factory) -> list[dict]:
    out_dir = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(_free_port(), str(out_dir)), nprocs=WORLD, join=True)
    return [torch.load(out_dir / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _assert_grads_close(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-9, atol=1e-12, msg=name)


@pytest.mark.multiprocess
def test_two_rank_helpers_and_tag_gather(two_rank_results) -> None:
    audio_in = _global_inputs()[0]
    expected_prompts = draw_tag_prompts(VOCAB, PARAPHRASES, random.Random(100), "a {} voice")
    for r, res in enumerate(two_rank_results):
        assert res["info"] == (r, r, 2, "gloo", "cpu")
        assert res["helpers"] == (r, 2, r == 0, True)
        assert res["all_gather_object"] == [{"r": 0}, {"r": 1}]
        assert res["broadcast_object"] == "from 0"
        torch.testing.assert_close(res["all_reduce_mean"], torch.tensor([1.5, 5.0]))
        # Weighted by count (1 on rank 0, 2 on rank 1): a = (0*1 + 1*2) / 3.
        assert res["average_metrics"] == pytest.approx({"a": 2 / 3, "b": 1.0})
        assert res["prompts"] == expected_prompts  # rank 1's own RNG (seed 101) is not used
        torch.testing.assert_close(res["gathered"], audio_in, rtol=0, atol=0)
        # The local tensor was re-inserted at index r: its gradient is the weights of rows r*B:(r+1)*B.
        weights = torch.arange(audio_in.numel(), dtype=audio_in.dtype).view_as(audio_in)
        torch.testing.assert_close(res["local_grad"], weights[r * 3 : (r + 1) * 3], rtol=0, atol=0)
        assert res["tags"] == TAGS  # aligned with the gathered rows, in rank order


@pytest.mark.multiprocess
@pytest.mark.parametrize("kind", ["contrastive", "multitask"])
@pytest.mark.parametrize("mode", ["with_grad", "local"])
def test_autograd_gather_rank_mean_equals_single_process(two_rank_results, kind: str, mode: str) -> None:
    ref = _param_grads(kind, 0, 1, {})
    runs = [res["runs"][(kind, mode, None)] for res in two_rank_results]
    mean_grads = {n: sum(run["grads"][n] for run in runs) / WORLD for n in ref["grads"]}
    _assert_grads_close(mean_grads, ref["grads"])
    for key, value in ref["losses"].items():
        if mode == "local" and key == "contrastive_loss":
            # Each rank holds its rows' share; the global loss is their mean.
            assert sum(run["losses"][key] for run in runs) / WORLD == pytest.approx(value, rel=1e-10)
            assert runs[0]["losses"][key] != pytest.approx(value, rel=1e-6)
        else:
            assert all(run["losses"][key] == pytest.approx(value, rel=1e-10) for run in runs)


@pytest.mark.multiprocess
@pytest.mark.parametrize("kind", ["contrastive", "multitask"])
def test_official_no_grad_gather_gradient_relation(two_rank_results, kind: str) -> None:
    # Official mode: every rank computes the full global loss but differentiates only its own
    # rows of the gathered audio/text embeddings. Hence, exactly:
    #   sum_r (grad through gathered embeddings on rank r) == 1-process grad through the embeddings,
    #   grad through replicated inputs (logit scale, tag-prompt embeddings) on each rank
    #       == 1-process grad through them,
    # so the DDP average is  grad_emb / W + grad_replicated  (not the 1-process gradient).
    ref_gathered = _param_grads(kind, 0, 1, {}, detach="replicated")["grads"]
    ref_replicated = _param_grads(kind, 0, 1, {}, detach="gathered")["grads"]
    runs = {
        d: [res["runs"][(kind, "official", d)] for res in two_rank_results] for d in (None, "gathered", "replicated")
    }
    _assert_grads_close({n: sum(r["grads"][n] for r in runs["replicated"]) for n in ref_gathered}, ref_gathered)
    for run in runs["gathered"]:
        _assert_grads_close(run["grads"], ref_replicated)
    ddp_mean = {n: sum(r["grads"][n] for r in runs[None]) / WORLD for n in ref_gathered}
    _assert_grads_close(ddp_mean, {n: ref_gathered[n] / WORLD + ref_replicated[n] for n in ref_gathered})
    ref_losses = _param_grads(kind, 0, 1, {})["losses"]
    for run in runs[None]:
        assert run["losses"] == pytest.approx(ref_losses, rel=1e-10)
    # The relation is not vacuous: both paths carry gradient, so the average differs from 1-process.
    assert ref_gathered["audio.weight"].abs().sum() > 1e-3 and ref_replicated["log_logit_scale"].abs() > 1e-3
