"""The Ray session the CLI holds around one job (``executor_session("ray", ..., jobs=1)``): Ray is
started for the block, warmed up while the caller loads its model, and stopped in the background as
soon as the last job is done, so that its shutdown overlaps the labelling; the block's exit waits for it.

Starts its own local Ray instances (no shared fixture): the session must own Ray to stop it.
"""

from __future__ import annotations

import pytest
import soundfile as sf

from paraspeechclap.testing import tone

ray = pytest.importorskip("ray")


@pytest.fixture()
def clips(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    for i in range(4):
        sf.write(root / f"c{i}.wav", tone(0.5, 120.0 + 30 * i, seed=i), 16000)
    return root


def _annotate(tiny_dir, clips, out):
    from paraspeechclap import load_model
    from paraspeechclap.annotate import Settings, annotate, items_from_dir

    model = load_model(str(tiny_dir), precision="fp32")
    spec = {"name_or_path": str(tiny_dir), "precision": "fp32", "device": "cpu"}
    return annotate(model, items_from_dir(clips), out, Settings(attributes=["gender"], shard_size=2, executor="ray"),
                    progress=False, model_spec=spec, executor_options={"workers": 1})


def test_session_stops_ray_after_its_last_job_and_not_before(tiny_dir, clips, tmp_path):
    from paraspeechclap.annotate.executors import executor_session

    if ray.is_initialized():  # another module's instance would be joined, not owned
        ray.shutdown()
    with executor_session("ray", {}) as session:  # no job count: Ray lives until the block ends
        assert ray.is_initialized() and session.owned
        first = _annotate(tiny_dir, clips, tmp_path / "a")
        assert not session.stopping and ray.is_initialized()
        second = _annotate(tiny_dir, clips, tmp_path / "b")  # a second job joins the same instance
        assert second["executor"]["shards_written"] == 2 == first["executor"]["shards_written"]
    assert not ray.is_initialized()

    with executor_session("ray", {}, jobs=1) as session:
        result = _annotate(tiny_dir, clips, tmp_path / "c")  # labels after the job, with Ray stopping
        assert session.stopping and result["counts"]["annotated"] == 4
        assert (tmp_path / "c" / "manifest.jsonl").read_text() == (tmp_path / "a" / "manifest.jsonl").read_text()
    assert not ray.is_initialized()  # the exit waited for the shutdown


def test_no_ray_dataset_is_alive_when_the_shutdown_starts(tiny_dir, clips, tmp_path, monkeypatch):
    """A ref freed while the background shutdown runs reaches the core worker mid-shutdown and ends the
    process; so the job drops its dataset before it reports itself done."""
    import gc

    from ray.data import Dataset

    from paraspeechclap.annotate import ray_executor
    from paraspeechclap.annotate.executors import executor_session

    alive: list[int] = []
    job_done = ray_executor.RaySession.job_done

    def checked(self):
        gc.collect()
        alive.append(sum(isinstance(o, Dataset) for o in gc.get_objects()))
        job_done(self)

    monkeypatch.setattr(ray_executor.RaySession, "job_done", checked)
    if ray.is_initialized():
        ray.shutdown()
    with executor_session("ray", {}, jobs=1) as session:
        result = _annotate(tiny_dir, clips, tmp_path / "d")
        assert session.stopping and result["counts"]["annotated"] == 4
    assert alive == [0]
