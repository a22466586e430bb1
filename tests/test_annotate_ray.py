"""``annotate --executor ray`` for real, on a local Ray instance with 2 CPUs: the same rows as the
local executor, a killed embedding actor, resuming, and a finished job left alone.

Needs the ``ray`` extra (``[dev]`` includes it); skipped without it.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from paraspeechclap.testing import tone

ray = pytest.importorskip("ray")

SETS = ["gender", "pitch_level"]


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module; annotate joins it and leaves it running."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray_corpus")
    for i in range(12):
        sf.write(root / f"c{i:02d}.wav", tone(0.5 + 0.05 * i, 100.0 + 20 * i, seed=i), 16000)
    (root / "c99_bad.wav").write_bytes(b"junk")
    return root


def _run(tiny_dir, clips, out, executor, shard_size=2):
    from paraspeechclap import load_model
    from paraspeechclap.annotate import Settings, annotate, items_from_dir

    model = load_model(str(tiny_dir), precision="fp32")
    settings = Settings(attributes=SETS, shard_size=shard_size, executor=executor)
    spec = {"name_or_path": str(tiny_dir), "precision": "fp32", "device": "cpu"}
    return annotate(model, items_from_dir(clips), out, settings, progress=False, model_spec=spec,
                    executor_options={"workers": 1})


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _embeddings(out: Path) -> np.ndarray:
    import pyarrow.parquet as pq

    return np.asarray(pq.read_table(sorted((out / "shards").glob("*.parquet"))).column("embedding").to_pylist())


def _same_rows(a: list[dict], b: list[dict]) -> None:
    """Identical rows, except the probabilities, which follow the embeddings' last bits (summation order
    changes with the thread count): within 1e-5."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        floats = ("probabilities", "distributions")
        assert {k: v for k, v in x.items() if k not in floats} == {k: v for k, v in y.items() if k not in floats}
        assert x["probabilities"] == pytest.approx(y["probabilities"], abs=1e-5)
        for name, dist in x["distributions"].items():
            assert dist == pytest.approx(y["distributions"][name], abs=1e-5)


def _exactly_once(out: Path, n_inputs: int) -> None:
    rows = _manifest(out)
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    seen = sorted([r["input_index"] for r in rows] + [e["input_index"] for e in errors])
    assert seen == list(range(n_inputs))


def test_ray_gives_the_local_rows(local_ray, tiny_dir, clips, tmp_path):
    local = _run(tiny_dir, clips, tmp_path / "local", "local")
    remote = _run(tiny_dir, clips, tmp_path / "ray", "ray")
    _same_rows(_manifest(tmp_path / "local"), _manifest(tmp_path / "ray"))  # labels, captions, measurements
    np.testing.assert_allclose(_embeddings(tmp_path / "ray"), _embeddings(tmp_path / "local"), atol=1e-6)
    assert (tmp_path / "local" / "errors.jsonl").read_text() == (tmp_path / "ray" / "errors.jsonl").read_text()
    assert remote["counts"] == local["counts"]
    ex = remote["executor"]
    assert ex["name"] == "ray" and ex["shards_written"] == 7 and sum(ex["shards_by_node"].values()) == 7
    assert "decode" in ex["ray_stats"].lower() or "map" in ex["ray_stats"].lower()


def _embedding_actors() -> list[int]:
    """PIDs of the live embedding actors, found as an operator would: by process title (Ray names the
    process ``ray::MapWorker(Map(_Embedder))``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if cmd.startswith(b"ray::MapWorker") and b"_Embedder" in cmd:
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the actor's process in /proc")
def test_killed_actor_is_restarted_and_nothing_is_lost(local_ray, tiny_dir, clips, tmp_path):
    out, result, killed = tmp_path / "out", {}, []
    job = threading.Thread(target=lambda: result.update(_run(tiny_dir, clips, out, "ray", shard_size=1)))
    job.start()
    deadline = time.time() + 120
    while not killed and time.time() < deadline and job.is_alive():
        for pid in _embedding_actors():
            os.kill(pid, signal.SIGKILL)  # from outside, as a crash or the OOM killer would
            killed.append(pid)
        time.sleep(0.05)
    job.join(timeout=300)
    assert killed, "no embedding actor was seen alive"
    assert not job.is_alive() and result, "the job did not finish after its actor was killed"
    _exactly_once(out, 13)
    assert set(result["executor"]["embed_pids"]) - set(killed)  # a restarted actor embedded the shards


def test_ray_resumes_and_leaves_a_finished_job_alone(local_ray, tiny_dir, clips, tmp_path):
    out = tmp_path / "out"
    _run(tiny_dir, clips, out, "ray", shard_size=4)
    first = (out / "manifest.jsonl").read_text()
    for p in sorted((out / "work").glob("part-*.parquet"))[1:3]:
        p.unlink()  # an interrupted job: two shards missing, no run.json
    (out / "run.json").unlink()
    again = _run(tiny_dir, clips, out, "ray", shard_size=4)
    assert again["executor"]["shards_written"] == 2 and again["executor"]["shards_done_before"] == 2
    _same_rows(_manifest(out), [json.loads(x) for x in first.splitlines()])
    done = _run(tiny_dir, clips, out, "ray", shard_size=4)
    assert done.get("nothing_to_do") and done["executor"]["shards_written"] == 2  # the record of the last real run
    _exactly_once(out, 13)


# -- embed and index through the executor ---------------------------------------------------------------
def test_embed_and_index_with_the_ray_executor_equal_local(local_ray, tiny_dir, clips, tmp_path, capsys):
    """``embed --executor ray`` writes the local command's rows (order, skipped file, values within 1e-6);
    ``index --executor ray`` builds the same index, and a re-run embeds nothing."""
    from paraspeechclap.cli.main import main
    from paraspeechclap.search.index import load_index

    files = sorted(str(p) for p in clips.glob("*.wav"))
    common = ["--model", str(tiny_dir), "--precision", "fp32", "--skip-bad"]
    assert main(["embed", *files, "--out", str(tmp_path / "local.npy"), *common]) == 0
    assert main(["embed", *files, "--out", str(tmp_path / "ray.npy"), *common, "--executor", "ray"]) == 0
    local, distributed = np.load(tmp_path / "local.npy"), np.load(tmp_path / "ray.npy")
    ids_l = json.loads((tmp_path / "local.ids.json").read_text())
    ids_r = json.loads((tmp_path / "ray.ids.json").read_text())
    assert ids_r["items"] == ids_l["items"] and len(ids_r["skipped"]) == 1 == len(ids_l["skipped"])
    assert ids_r["skipped"][0]["item"].endswith("c99_bad.wav") and ids_r["executor"] == "ray"
    np.testing.assert_allclose(distributed, local, atol=1e-6)

    assert main(["index", str(clips), "--out", str(tmp_path / "idx_l"), *common, "--ann", "none"]) == 0
    assert main(["index", str(clips), "--out", str(tmp_path / "idx_r"), *common, "--ann", "none",
                 "--executor", "ray", "--json"]) == 0
    a, b = load_index(tmp_path / "idx_l"), load_index(tmp_path / "idx_r")
    assert [it["path"] for it in a.items] == [it["path"] for it in b.items]
    np.testing.assert_allclose(np.asarray(b.embeddings), np.asarray(a.embeddings), atol=1e-6)
    capsys.readouterr()
    assert main(["index", str(clips), "--out", str(tmp_path / "idx_r"), *common, "--ann", "none",
                 "--executor", "ray", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["embedded"] == 0


def test_executor_flags_are_checked(tiny_dir, clips, tmp_path, capsys):
    from paraspeechclap.cli.main import main

    code = main(["embed", str(next(clips.glob("c00.wav"))), "--out", str(tmp_path / "x.npy"), "--model",
                 str(tiny_dir), "--workers", "2"])
    assert code == 2 and "--executor ray" in capsys.readouterr().err


@pytest.mark.parametrize("workers,cpus,fits", [(1, 2, True), (2, 2, False), (2, 3, True), (3, 4, True),
                                               (4, 4, False), (1, 1, False)])
def test_capacity_check_refuses_pools_that_hold_every_cpu(workers, cpus, fits):
    from paraspeechclap.annotate.ray_executor import DECODE_CPUS, EMBED_CPUS, WRITE_CPUS, check_capacity
    from paraspeechclap.errors import InputError

    # the condition written out: the actors' CPUs and one decode and one write task must fit
    assert (workers * EMBED_CPUS + DECODE_CPUS + WRITE_CPUS <= cpus) == fits
    if fits:
        check_capacity(workers, cpus)
    else:
        with pytest.raises(InputError, match=f"--workers {workers}"):
            check_capacity(workers, cpus)


def test_too_many_workers_fail_at_once_instead_of_waiting_forever(local_ray, tiny_dir, clips, tmp_path, capsys):
    """Two 1-CPU actors on the fixture's 2 CPUs left none for decoding: the job used to hang."""
    from paraspeechclap.cli.main import main

    codes: list[int] = []
    argv = ["annotate", str(clips), "--out", str(tmp_path / "ann"), "--model", str(tiny_dir), "--precision", "fp32",
            "--executor", "ray", "--workers", "2", "--no-progress"]
    job = threading.Thread(target=lambda: codes.append(main(argv)), daemon=True)  # a hang fails, not stalls, the suite
    job.start()
    job.join(timeout=120)
    assert not job.is_alive(), "annotate --workers 2 on 2 CPUs is still waiting after 120 s"
    err = capsys.readouterr().err.strip()
    assert codes == [2]
    assert "--workers 2" in err and "use --workers 1 or fewer" in err and len(err.splitlines()) == 1
    assert not list((tmp_path / "ann").glob("**/*.parquet"))
