"""Every bad input gets a one-line error naming the item, from the API and from the CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from paraspeechclap import load_model
from paraspeechclap.errors import AudioError, InputError, ModelError
from paraspeechclap.testing import tone


def _bad_files(tmp_path):
    """name -> (path, expected message fragment)."""
    cases = {}
    cases["missing"] = (tmp_path / "nope.wav", "file not found")
    (tmp_path / "adir.wav").mkdir()
    cases["directory"] = (tmp_path / "adir.wav", "is a directory")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    cases["corrupt"] = (tmp_path / "corrupt.wav", "cannot decode audio")
    (tmp_path / "empty.wav").write_bytes(b"")
    cases["empty_file"] = (tmp_path / "empty.wav", "cannot decode audio")
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.float32), 16000)
    cases["zero_samples"] = (tmp_path / "zero.wav", "zero samples")
    sf.write(tmp_path / "silence.wav", np.zeros(16000, np.float32), 16000)
    cases["silence"] = (tmp_path / "silence.wav", "digital silence")
    sf.write(tmp_path / "short.wav", tone(0.01), 16000)  # 160 samples < WavLM's 400-sample receptive field
    cases["too_short"] = (tmp_path / "short.wav", "too short")
    x = tone(0.5)
    x[100] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    cases["nan"] = (tmp_path / "nan.wav", "NaN or infinite")
    y = tone(0.5)
    y[7] = np.inf
    sf.write(tmp_path / "inf.wav", y, 16000, subtype="FLOAT")
    cases["inf"] = (tmp_path / "inf.wav", "NaN or infinite")
    return cases


def test_bad_audio_files_raise_audio_error_naming_the_file(tiny, tmp_path):
    for name, (path, needle) in _bad_files(tmp_path).items():
        with pytest.raises(AudioError) as info:
            tiny.embed_audio([str(path)])
        msg = str(info.value)
        assert str(path) in msg and needle in msg, (name, msg)
        assert "\n" not in msg


def test_bad_arrays(tiny):
    with pytest.raises(AudioError, match="NaN"):
        tiny.embed_audio([np.array([0.1, np.nan] * 400, np.float32)])
    with pytest.raises(AudioError, match="zero samples"):
        tiny.embed_audio([np.zeros(0, np.float32)])
    with pytest.raises(AudioError, match="shape"):
        tiny.embed_audio([np.zeros((2, 3, 4), np.float32)])


def test_skip_bad_reports_and_carries_on(tiny, tmp_path):
    cases = _bad_files(tmp_path)
    good = tmp_path / "good.wav"
    sf.write(good, tone(0.7), 16000)
    items = [str(good)] + [str(p) for p, _ in cases.values()] + [str(good)]
    res = tiny.embed_audio_report(items, skip_bad=True)
    assert res.indices == [0, len(items) - 1]
    assert [i for i, _ in res.errors] == list(range(1, len(items) - 1))
    np.testing.assert_allclose(res.embeddings[0], res.embeddings[1], atol=1e-6)


def test_bad_text_inputs(tiny):
    for caps in (["ok", ""], ["   "], [None]):
        with pytest.raises(InputError, match="caption #"):
            tiny.embed_text(caps)
    with pytest.raises(InputError, match="no candidates"):
        tiny.classify([tone(0.5)], [])
    with pytest.raises(InputError, match="template"):
        tiny.classify([tone(0.5)], ["a"], template="no placeholder")


def test_overlong_caption_is_truncated_with_a_warning(tiny, caplog):
    long = "a very slow and deep voice " * 100
    with caplog.at_level("WARNING"):
        emb = tiny.embed_text([long])
    assert emb.shape == (1, tiny.config.embed_dim) and "truncated" in caplog.text


def test_non_ascii_caption_works(tiny):
    emb = tiny.embed_text(["une voix grave et lente — très calme", "声音低沉"])
    assert np.isfinite(emb).all()


def test_unknown_model_and_not_a_model_dir(tmp_path):
    with pytest.raises(ModelError, match="unknown model 'no-such-model'"):
        load_model("no-such-model")
    with pytest.raises(ModelError, match="not a saved paraspeechclap model"):
        load_model(str(tmp_path))


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "paraspeechclap", *args], capture_output=True, text=True)


def test_cli_bad_inputs_exit_nonzero_with_one_line(tmp_path, tiny_dir):
    cases = _bad_files(tmp_path)
    good = tmp_path / "good.wav"
    sf.write(good, tone(0.7), 16000)
    runs = {name: _cli("score", str(p), "--text", "x", "--model", str(tiny_dir)) for name, (p, _) in cases.items()}
    runs["empty caption"] = _cli("score", str(good), "--text", "  ", "--model", str(tiny_dir))
    runs["unknown model"] = _cli("score", str(good), "--text", "x", "--model", "no-such-model")
    runs["not a checkpoint"] = _cli("score", str(good), "--text", "x", "--model", str(cases["corrupt"][0]),
                                    "--audio-encoder", "tiny-wavlm", "--text-encoder", "tiny-bert")
    runs["no candidates"] = _cli("classify", str(good), "--candidates", "--model", str(tiny_dir))
    for name, r in runs.items():
        assert r.returncode != 0, name
        assert "Traceback" not in r.stderr, (name, r.stderr)
        lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
        assert lines and (lines[-1].startswith("error:") or "usage:" in r.stderr), (name, r.stderr)
    for name, (path, needle) in cases.items():
        assert str(path) in runs[name].stderr and needle in runs[name].stderr, name
