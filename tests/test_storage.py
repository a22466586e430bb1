"""Audio on object storage (:mod:`paraspeechclap.storage`): URI helpers, reading and listing through
pyarrow's file systems (``file://`` and a real S3 endpoint, moto's server on 127.0.0.1), manifests rooted
on a bucket, ``data check`` of them, and ``annotate`` of a bucket (local and Ray executors) giving the
rows of the same files on disk.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from paraspeechclap.audio.io import read_audio
from paraspeechclap.errors import AudioError, InputError
from paraspeechclap.search.index import AUDIO_EXTENSIONS
from paraspeechclap.storage import is_uri, join_uri, list_files
from paraspeechclap.testing import tone
from s3_helpers import s3_server, upload_folder

SETS = ["gender", "pitch_level"]


def test_is_uri_and_join_uri():
    assert is_uri("s3://bucket/k.wav") and is_uri("gs://b") and is_uri("file:///tmp/x.wav")
    for not_uri in ("/tmp/x.wav", "rel/x.wav", "C://x.wav", "", Path("s3://b/k.wav"), None, "://x"):
        assert not is_uri(not_uri), not_uri
    assert join_uri("s3://b/root/?endpoint_override=h:9000", "src", "/a/x.wav") == \
        "s3://b/root/src/a/x.wav?endpoint_override=h:9000"
    assert join_uri("s3://b", "x.wav") == "s3://b/x.wav"


def test_file_uris_list_and_read_like_paths(tmp_path):
    """``file://`` goes through the same pyarrow layer as a bucket: listing rules and errors."""
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    for rel in ("a.wav", "sub/b.flac", ".hidden/c.wav", ".d.wav"):
        sf.write(tmp_path / rel, tone(0.3, 150.0), 16000)
    (tmp_path / "notes.txt").write_text("x")
    uri = tmp_path.as_uri()
    assert list_files(uri, AUDIO_EXTENSIONS) == [f"{uri}/a.wav", f"{uri}/sub/b.flac"]
    wav, sr = read_audio(f"{uri}/sub/b.flac")
    ref, ref_sr = read_audio(tmp_path / "sub" / "b.flac")
    assert sr == ref_sr and np.array_equal(wav, ref)
    with pytest.raises(AudioError, match=r"missing\.wav: file not found"):
        read_audio(f"{uri}/missing.wav")
    with pytest.raises(AudioError, match="is a directory"):
        read_audio(f"{uri}/sub")
    with pytest.raises(InputError, match="not a directory"):
        list_files(f"{uri}/nope", AUDIO_EXTENSIONS)


@pytest.fixture(scope="module")
def s3():
    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def bucket(s3, tmp_path_factory):
    """Five tones (16 and 22.05 kHz) and one undecodable file, on disk under ``local/clips`` and in
    ``s3://corpus/set1/clips``."""
    local = tmp_path_factory.mktemp("s3src")
    clips = local / "clips"
    clips.mkdir()
    for i in range(5):
        sr = 16000 if i % 2 == 0 else 22050
        sf.write(clips / f"c{i}.wav", tone(0.6 + 0.1 * i, 120.0 + 40 * i, sr=sr, seed=i), sr)
    (clips / "c9_bad.wav").write_bytes(b"not audio")
    upload_folder(s3, local, "corpus", "set1")
    return SimpleNamespace(local=local, clips=clips, root="s3://corpus/set1", uri="s3://corpus/set1/clips")


def test_s3_read_and_list_equal_the_local_files(bucket):
    names = sorted(p.name for p in bucket.clips.iterdir())
    assert list_files(bucket.uri, AUDIO_EXTENSIONS) == [f"{bucket.uri}/{n}" for n in names]
    for i in range(5):
        wav, sr = read_audio(f"{bucket.uri}/c{i}.wav")
        ref, ref_sr = read_audio(bucket.clips / f"c{i}.wav")
        assert sr == ref_sr and np.array_equal(wav, ref)
    with pytest.raises(AudioError, match=r"s3://corpus/set1/clips/c9_bad\.wav: cannot decode audio"):
        read_audio(f"{bucket.uri}/c9_bad.wav")
    with pytest.raises(AudioError, match=r"s3://corpus/set1/clips/none\.wav: file not found"):
        read_audio(f"{bucket.uri}/none.wav")


def test_manifest_rooted_on_a_bucket_loads_and_checks(bucket, tmp_path):
    from paraspeechclap.audio.io import load_audio
    from paraspeechclap.data.check import check_manifest
    from paraspeechclap.data.manifest import load_manifest

    rows = [{"source": "clips", "relative_audio_path": "c0.wav"},
            {"source": "other", "relative_audio_path": f"{bucket.uri}/c1.wav"},  # a URI row needs no root
            {"source": "clips", "relative_audio_path": "gone.wav"},
            {"source": "clips", "relative_audio_path": "c9_bad.wav"}]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    man = load_manifest(path, audio_root=bucket.root)
    assert man.audio_path(0) == f"{bucket.root}/clips/c0.wav"
    assert man.audio_path(1) == f"{bucket.uri}/c1.wav"
    assert np.array_equal(load_audio(man.audio_path(0)), load_audio(bucket.clips / "c0.wav"))
    report = check_manifest(path, audio_root=bucket.root)
    errors = [(p.line, p.message) for p in report.problems if p.severity == "error"]
    # one line each, naming the object (not soundfile's repr of the in-memory buffer)
    assert errors == [(3, f"{bucket.root}/clips/gone.wav: file not found"),
                      (4, f"cannot read audio header of {bucket.root}/clips/c9_bad.wav (Format not recognised.)")]


def _annotate(cli, tiny_dir, src, out, *extra):
    res = cli("annotate", src, "--out", out, "--model", tiny_dir, "--precision", "fp32", "--attributes", *SETS,
              "--shard-size", "2", "--no-progress", *extra)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in (Path(out) / "manifest.jsonl").read_text().splitlines()]
    errors = [json.loads(line) for line in (Path(out) / "errors.jsonl").read_text().splitlines()]
    return rows, errors


@pytest.fixture()
def cli(capsys):
    from paraspeechclap.cli.main import main

    def run(*argv):
        rc = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return SimpleNamespace(returncode=rc, stdout=captured.out, stderr=captured.err)

    return run


def _same_but_paths(bucket_rows, local_rows, bucket_uri):
    assert [r["relative_audio_path"] for r in bucket_rows] == [f"{bucket_uri}/{Path(r['relative_audio_path']).name}"
                                                             for r in local_rows]
    for b, loc in zip(bucket_rows, local_rows):
        b, loc = dict(b), dict(loc)
        b.pop("relative_audio_path"), loc.pop("relative_audio_path")
        # the caption wordings are seeded per clip path; the first, canonical, wording is not
        assert b.pop("text_description")[0] == loc.pop("text_description")[0]
        floats = ("probabilities", "distributions")
        assert {k: v for k, v in b.items() if k not in floats} == {k: v for k, v in loc.items() if k not in floats}
        assert b["probabilities"] == pytest.approx(loc["probabilities"], abs=1e-5)


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_annotate_a_bucket_gives_the_rows_of_the_files_on_disk(cli, tiny_dir, bucket, tmp_path, executor):
    if executor == "ray":
        ray = pytest.importorskip("ray")
        # a Ray instance started before the endpoint was set would not pass it on to its workers
        assert not ray.is_initialized()
    local_rows, local_errors = _annotate(cli, tiny_dir, bucket.clips, tmp_path / "disk")
    rows, errors = _annotate(cli, tiny_dir, bucket.uri, tmp_path / "s3", "--executor", executor)
    assert len(rows) == 5 and rows[0]["source"] == "clips"
    _same_but_paths(rows, local_rows, bucket.uri)
    assert [e["input_index"] for e in errors] == [e["input_index"] for e in local_errors] == [5]
    assert errors[0]["audio"] == f"{bucket.uri}/c9_bad.wav"
    assert errors[0]["error"] == f"{bucket.uri}/c9_bad.wav: cannot decode audio (Format not recognised.)"
    run = json.loads((tmp_path / "s3" / "run.json").read_text())
    assert run["info"]["audio_dir"] == bucket.uri
    # the output manifest's URI rows resolve without --audio-root
    res = cli("data", "check", tmp_path / "s3" / "manifest.jsonl", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert json.loads(res.stdout)["bad_rows"] == 0


def test_percent_encoded_uris_name_the_file_they_encode(tmp_path):
    """A URI's path is percent-encoded; listed names are encoded so that they read back as themselves."""
    folder = tmp_path / "my corpus"
    folder.mkdir()
    for i, name in enumerate(("a b.wav", "c%20d.wav", "e#1.wav")):
        sf.write(folder / name, tone(0.3 + 0.1 * i, 150.0 + 50 * i, seed=i), 16000)
    uri = folder.as_uri()
    assert "%20" in uri  # Path.as_uri encodes the space of the folder's name
    listed = list_files(uri, AUDIO_EXTENSIONS)
    assert listed == [f"{uri}/a%20b.wav", f"{uri}/c%2520d.wav", f"{uri}/e%231.wav"]
    for name, u in zip(("a b.wav", "c%20d.wav", "e#1.wav"), listed):
        assert np.array_equal(read_audio(u)[0], read_audio(folder / name)[0]), name
    assert join_uri(uri, "sub dir", "x%y.wav") == f"{uri}/sub%20dir/x%25y.wav"


def test_data_check_decode_of_a_uri_downloads_it_once(tmp_path, monkeypatch):
    """The header and the full decode of an object-store clip come from one download; a bad clip is
    still reported by the decode."""
    import paraspeechclap.data.check as check
    from paraspeechclap import storage

    sf.write(tmp_path / "ok.wav", tone(0.4, 150.0), 16000)
    sf.write(tmp_path / "silent.wav", np.zeros(8000, np.float32), 16000)
    calls: list[str] = []

    def counting(uri: str) -> bytes:
        calls.append(uri)
        return storage.read_bytes(uri)

    monkeypatch.setattr(check, "read_bytes", counting)
    monkeypatch.setattr("paraspeechclap.audio.io.read_bytes", counting)
    problems, seconds = check.audio_problems((tmp_path / "ok.wav").as_uri(), 0.4, decode=True)
    assert problems == [] and seconds == pytest.approx(0.4) and len(calls) == 1
    local, _ = check.audio_problems(tmp_path / "silent.wav", None, decode=True)
    remote, _ = check.audio_problems((tmp_path / "silent.wav").as_uri(), None, decode=True)
    assert local and len(remote) == len(local) and len(calls) == 2
    assert [p[0] for p in remote] == [p[0] for p in local] == ["relative_audio_path"]
