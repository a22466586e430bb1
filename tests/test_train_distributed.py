"""The trainer under torch.distributed (gloo, 2 CPU processes): step equivalence with one process, group DRO's
weights kept equal across ranks, and SIGKILL-and-resume under torchrun (killed from outside, see crash.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.multiprocess

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "train" / "tiny.yaml")
WORLD = 2
BATCH = 6  # global batch; each rank gets 3 rows


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> str:
    from paraspeechclap.training.toy import write_tone_corpus

    return str(write_tone_corpus(tmp_path_factory.mktemp("toy"), 16, seed=0, speakers=4))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(manifest: str, out: str):
    from paraspeechclap.training.config import load_config

    return load_config(TINY, [
        f"data.train_manifest={manifest}", "data.train=[]", "data.dev=[]", f"train.output_dir={out}",
        "train.device=cpu", "train.num_threads=1", "train.progress=false",
        # deterministic forward: no projection dropout, frozen backbones run in eval mode
        "model.projection_dropout=0.0", "model.audio_trainable=[]", "model.text_trainable=[]",
        # the autograd gather: DDP's averaged gradient then equals the one-process gradient
        "loss.gather_with_grad=true", "loss.name=multitask", "loss.tag_vocab=[deep, soft, loud, fast]",
    ])  # fmt: skip


def _global_batch() -> list:
    from paraspeechclap.encoders.base import PreparedAudio
    from paraspeechclap.training.data import TrainItem

    g = torch.Generator().manual_seed(0)
    captions = ["a deep voice", "a soft voice", "a loud fast voice", "someone talks", "a deep soft voice", "hello"]
    tags = [["deep"], ["soft"], ["loud", "fast"], [], ["deep", "soft"], ["fast"]]
    return [TrainItem(PreparedAudio(0.3 * torch.randn(8000, generator=g)), c, t, i)
            for i, (c, t) in enumerate(zip(captions, tags))]


def _loss_and_grads(trainer, items) -> tuple[float, dict[str, torch.Tensor]]:
    from paraspeechclap.training.data import collate_train
    from paraspeechclap.training.modules import set_train_mode

    set_train_mode(trainer.model)  # as fit() does: frozen backbones in eval mode
    losses = trainer.compute_losses(collate_train(items), step=1)
    total = sum(v for k, v in losses.items() if k.endswith("_loss"))
    total.backward()
    grads = {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    return total.item(), grads


def _join(rank: int, port: int):
    """This spawned process's place in a gloo group of WORLD processes."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(WORLD))
    from paraspeechclap.distributed import init_distributed

    return init_distributed(backend="gloo")


def _worker(rank: int, port: int, manifest: str, out_dir: str) -> None:
    import torch.distributed as dist

    from paraspeechclap.training.loop import Trainer

    trainer = Trainer(_config(manifest, out_dir), _join(rank, port))
    items = _global_batch()[rank * (BATCH // WORLD):(rank + 1) * (BATCH // WORLD)]
    loss, grads = _loss_and_grads(trainer, items)
    torch.save({"loss": loss, "grads": grads}, Path(out_dir) / f"rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


def test_two_process_step_equals_one_process_on_the_concatenated_batch(toy, tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    from paraspeechclap.distributed import DistributedInfo
    from paraspeechclap.training.loop import Trainer

    mp.spawn(_worker, args=(_free_port(), toy, str(tmp_path)), nprocs=WORLD, join=True)
    threads = torch.get_num_threads()
    try:
        single = Trainer(_config(toy, str(tmp_path / "single")), DistributedInfo(0, 0, 1, torch.device("cpu")))
        ref_loss, ref_grads = _loss_and_grads(single, _global_batch())
    finally:
        torch.set_num_threads(threads)
    assert any(g.abs().sum() > 0 for g in ref_grads.values())
    assert {"log_logit_scale", "audio_projection.linear1.weight", "text_projection.linear2.weight"} <= set(ref_grads)
    for rank in range(WORLD):
        res = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert res["loss"] == pytest.approx(ref_loss, rel=1e-5)  # every rank computes the global loss
        assert res["grads"].keys() == ref_grads.keys()
        for name, g in ref_grads.items():  # DDP's average over ranks == the one-process gradient
            torch.testing.assert_close(res["grads"][name], g, rtol=1e-4, atol=1e-6, msg=name)


def _centred_config(manifest: str, out: str, cache: str):
    """:func:`_config` plus the speaker-centred term centred at the projection's first linear output (over cached
    backbone states, which it needs), with the speakers' means refreshed before every step."""
    from paraspeechclap.training.config import load_config

    return load_config(TINY, [
        f"data.train_manifest={manifest}", "data.train=[]", "data.dev=[]", f"train.output_dir={out}",
        "train.device=cpu", "train.num_threads=1", "train.progress=false", "model.projection_dropout=0.0",
        "model.audio_trainable=[]", "model.text_trainable=[]", "loss.gather_with_grad=true",
        "features.cache=true", f"features.cache_dir={cache}", "features.variants=1",
        "loss.attribute_sets=[gender, pitch_level]", "eval.every_steps=null", "eval.at_end=false",
        "loss.centred={require: [pitch_level], sets: [pitch_level], min_clips: 2, refresh: 1, weight: 1.0, "
        "at: linear1}",
    ])  # fmt: skip


def _centred_grads(trainer, positions: list[int]) -> dict[str, torch.Tensor]:
    """The speakers' means refreshed as a step refreshes them, then the gradients of the dataset's rows
    ``positions`` (cached states, every row labelled and of a centred speaker)."""
    from paraspeechclap.training.modules import set_train_mode

    trainer.centred.refresh(trainer.model)
    set_train_mode(trainer.model)
    return _loss_and_grads(trainer, [trainer.dataset[i] for i in positions])[1]


def _centred_worker(rank: int, port: int, manifest: str, out_dir: str, cache: str) -> None:
    import torch.distributed as dist

    from paraspeechclap.training.loop import Trainer

    trainer = Trainer(_centred_config(manifest, out_dir, cache), _join(rank, port))
    grads = _centred_grads(trainer, list(range(rank * (BATCH // WORLD), (rank + 1) * (BATCH // WORLD))))
    torch.save({"grads": grads, "means": trainer.centred.means.means}, Path(out_dir) / f"centred{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


def test_the_centred_term_at_linear1_steps_as_one_process(toy, tmp_path: Path) -> None:
    """loss.centred with at: linear1 finishes the moved rows through the unwrapped projection, outside DDP's
    forward: the two ranks' averaged gradient must still be the one-process gradient of the whole batch (the
    attribute terms are per-rank means over equally many labelled rows, so their average is the batch mean)."""
    import torch.multiprocessing as mp

    from paraspeechclap.distributed import DistributedInfo
    from paraspeechclap.training.loop import Trainer

    cache = str(tmp_path / "features")
    threads = torch.get_num_threads()
    try:  # first, so the feature cache is built once before the ranks read it
        single = Trainer(_centred_config(toy, str(tmp_path / "single"), cache),
                         DistributedInfo(0, 0, 1, torch.device("cpu")))
        rows = [single.dataset[i].row for i in range(BATCH)]
        assert all(r.get("pitch_level") and r.get("speaker") for r in rows)
        ref = _centred_grads(single, list(range(BATCH)))
        ref_means = single.centred.means.means.clone()
    finally:
        torch.set_num_threads(threads)
    assert {"audio_projection.linear1.weight", "audio_projection.linear2.weight"} <= set(ref)
    mp.spawn(_centred_worker, args=(_free_port(), toy, str(tmp_path), cache), nprocs=WORLD, join=True)
    for rank in range(WORLD):
        res = torch.load(tmp_path / f"centred{rank}.pt", weights_only=True)
        torch.testing.assert_close(res["means"], ref_means)  # every rank centres on the same means
        assert res["grads"].keys() == ref.keys()
        for name, g in ref.items():  # float32 sums in another order: tolerance on the gradient's own scale
            torch.testing.assert_close(res["grads"][name], g, rtol=1e-4, atol=1e-5 * float(g.abs().max()), msg=name)


def _dro_worker(rank: int, port: int, manifest: str, out_dir: str) -> None:
    import torch.distributed as dist

    from paraspeechclap.training.config import load_config
    from paraspeechclap.training.data import collate_train
    from paraspeechclap.training.loop import Trainer

    info = _join(rank, port)
    cfg = load_config(TINY, [f"data.train_manifest={manifest}", "data.train=[]", "data.dev=[]",
                             f"train.output_dir={out_dir}", "train.device=cpu", "train.num_threads=1",
                             "loss.attribute_sets=[gender]", "loss.group_dro={group_field: speaker, require: [gender], "
                             "eta: 1.0, min_clips: 1}"])  # fmt: skip
    trainer = Trainer(cfg, info)
    # the ranks' batches differ: rank 0 hears only the toy corpus's speaker toy0, rank 1 toy0 and toy1
    speakers = [["toy0", "toy0", "toy0"], ["toy0", "toy1", "toy1"]][rank]
    items = _global_batch()[rank * 3:(rank + 1) * 3]
    for item, spk in zip(items, speakers):
        item.row = {"speaker": spk, "gender": "male" if spk == "toy0" else "female"}
    trainer.compute_losses(collate_train(items), step=1)
    torch.save({"q": trainer.group_dro.q}, Path(out_dir) / f"dro{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


def test_group_weights_stay_equal_across_ranks(toy, tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_dro_worker, args=(_free_port(), toy, str(tmp_path)), nprocs=WORLD, join=True)
    q0, q1 = (torch.load(tmp_path / f"dro{r}.pt", weights_only=True)["q"] for r in range(WORLD))
    torch.testing.assert_close(q0, q1, rtol=0, atol=0)  # every rank took the same step
    assert len(q0) == 4 and q0[0] != q0[2] and q0[1] != q0[2]  # toy0 and toy1 moved off toy2's weight


def _torchrun_cmd(manifest: str, out: Path, resume: bool = False) -> list[str]:
    sets = [f"data.train_manifest={manifest}", "data.train=[]", "data.dev=[]", "train.batch_size=3",
            "train.max_steps=24", "train.checkpoint_every=4", "train.num_threads=1", "train.progress=false",
            "train.device=cpu", "eval.at_end=false", "model.projection_dropout=0.3", f"train.output_dir={out}"]
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={WORLD}", "--master_addr=127.0.0.1",
            f"--master_port={_free_port()}", "-m", "paraspeechclap", "train", "--config", TINY,
            *[a for s in sets for a in ("--set", s)], *(["--resume", "auto"] if resume else [])]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _torchrun(manifest: str, out: Path, resume: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(_torchrun_cmd(manifest, out, resume), check=False, capture_output=True, text=True,
                          timeout=180, cwd=REPO, env=_env())


@pytest.mark.slow
def test_torchrun_sigkill_and_resume_gives_the_uninterrupted_weights(toy, tmp_path: Path) -> None:
    from crash import checkpoint_complete, kill_run, start_run, wait_until  # tests/crash.py
    from safetensors.torch import load_file

    from paraspeechclap.training.checkpoint import is_valid_checkpoint, list_checkpoints

    ref = _torchrun(toy, tmp_path / "ref")
    assert ref.returncode == 0, ref.stderr[-3000:]
    # torchrun and both workers (each in a session of its own) SIGKILLed from outside once the step-4
    # checkpoint is complete; 20 steps remain, so the kill lands long before the run could finish.
    crashed, log = tmp_path / "crashed", tmp_path / "crashed.log"
    proc = start_run(_torchrun_cmd(toy, crashed), REPO, _env(), log)
    wait_until(proc, checkpoint_complete(crashed / "checkpoints", 4), "the step-4 checkpoint", log)
    assert kill_run(proc) == -9
    assert not (crashed / "final").exists()
    newest = next(s for s, p in list_checkpoints(crashed / "checkpoints") if is_valid_checkpoint(p))
    assert 4 <= newest < 24
    resumed = _torchrun(toy, crashed, resume=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = load_file(str(tmp_path / "ref" / "final" / "model.safetensors"))
    b = load_file(str(crashed / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6, msg=k)
    assert json.loads((crashed / "summary.json").read_text())["steps"] == 24
