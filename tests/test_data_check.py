"""``paraspeechclap data check``: problems per row, summary, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from paraspeechclap.cli.main import main
from paraspeechclap.data.check import check_manifest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _write_clip(path: Path, seconds: float, sr: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), sr)


@pytest.fixture()
def bad_manifest(tmp_path):
    """Line -> defect: 1 ok, 2 missing file, 3 undecodable, 4 no source, 5 wrong types, 6 bad JSON,
    7 ok but duration off, unknown emotion and pitch_level values (warnings only); 5 also duplicates 1."""
    _write_clip(tmp_path / "c" / "ok.wav", 1.0)
    _write_clip(tmp_path / "c" / "ok2.flac", 2.0)
    (tmp_path / "c" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4)
    lines = [
        {"source": "c", "relative_audio_path": "ok.wav", "duration": 1.0, "speaker": "a", "gender": "male",
         "emotion": "anger", "situational_tags": ["angry"], "text_description": "An angry man."},
        {"source": "c", "relative_audio_path": "missing.wav", "speaker": "a"},
        {"source": "c", "relative_audio_path": "broken.wav", "speaker": "b"},
        {"relative_audio_path": "ok.wav"},
        {"source": "c", "relative_audio_path": "ok.wav", "intrinsic_tags": 3, "duration": "x", "text_description": 5},
        None,
        {"source": "c", "relative_audio_path": "ok2.flac", "duration": 9.0, "emotion": "grumpy", "speaker": "b",
         "intrinsic_tags": ["Deep"], "pitch_level": "purple"},
    ]  # fmt: skip
    p = tmp_path / "m.jsonl"
    p.write_text("\n".join("{oops" if r is None else json.dumps(r) for r in lines) + "\n")
    return p


def test_report_lists_each_bad_row_with_line_and_field(bad_manifest):
    rep = check_manifest(bad_manifest)
    assert rep.rows == 7 and rep.bad_rows == 5 and not rep.ok
    errors = {(p.line, p.field) for p in rep.errors}
    assert (2, "relative_audio_path") in errors  # missing file
    assert (3, "relative_audio_path") in errors  # undecodable
    assert (4, "source") in errors
    assert {(5, "intrinsic_tags"), (5, "duration"), (5, "text_description")} <= errors
    assert (6, "<line>") in errors
    assert not any(p.line in (1, 7) for p in rep.errors)
    warnings = {(p.line, p.field) for p in rep.warnings}
    # line 5 repeats line 1's audio: a duplicate is a warning
    assert warnings == {(5, "relative_audio_path"), (7, "duration"), (7, "emotion"), (7, "pitch_level")}
    msgs = {p.line: p.message for p in rep.errors}
    assert "not found" in msgs[2] and "cannot read audio header" in msgs[3]
    # summary over the 2 good rows; hours from the headers (1 s + 2 s), not the wrong manifest duration
    assert rep.hours == pytest.approx(3.0 / 3600, rel=1e-6)
    assert rep.sources == {"c": 2} and rep.speakers == 2
    assert rep.intrinsic_tags == {"deep": 1} and rep.situational_tags == {"angry": 1}
    assert rep.labels == {"pitch_level": {"purple": 1}} and rep.emotions == {"anger": 1, "grumpy": 1}


def test_cli_exit_codes_and_json(bad_manifest, capsys, tmp_path):
    assert main(["data", "check", str(bad_manifest)]) == 1
    out = capsys.readouterr().out
    assert "line 2 (c/missing.wav) [relative_audio_path] error" in out and "FAILED: 5 bad rows" in out
    assert main(["data", "check", str(bad_manifest), "--json"]) == 1
    obj = json.loads(capsys.readouterr().out)
    assert obj["bad_rows"] == 5 and obj["ok"] is False and len(obj["problems"]) == obj["num_errors"] + 4
    good = tmp_path / "good.jsonl"
    good.write_text(bad_manifest.read_text().splitlines()[0] + "\n")
    assert main(["data", "check", str(good), "--decode"]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["data", "check", str(tmp_path / "absent.jsonl")]) == 2  # unreadable manifest: InputError


def test_audio_root_option_and_decode_catches_silence(tmp_path):
    root = tmp_path / "audio"
    path = root / "s" / "silent.wav"
    path.parent.mkdir(parents=True)
    sf.write(path, np.zeros(16000, dtype=np.float32), 16000)
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"source": "s", "relative_audio_path": "silent.wav"}) + "\n")
    assert check_manifest(m).bad_rows == 1  # default root = manifest dir: file not there
    assert check_manifest(m, audio_root=root).ok  # header is fine
    rep = check_manifest(m, audio_root=root, decode=True)
    assert rep.bad_rows == 1 and "silent" in rep.errors[0].message.lower()


@pytest.mark.skipif(not (SHARED / "real" / "manifest.jsonl").exists(), reason="shared data absent")
def test_shared_manifest_is_clean():
    rep = check_manifest(SHARED / "real" / "manifest.jsonl")
    assert rep.ok and rep.rows == 751 and rep.bad_rows == 0
    assert rep.sources == {"emodb": 535, "urdu": 200, "emovdb": 16}
    assert 0.3 < rep.hours < 0.6  # 535 x 2 s EmoDB clips alone are 0.30 h
