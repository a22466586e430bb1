"""Manifest reading in every format, the Manifest container and StyleDataset."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from paraspeechclap.data.dataset import StyleDataset
from paraspeechclap.data.manifest import Manifest, load_manifest, pick_caption, row_key, row_tags
from paraspeechclap.errors import InputError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

ROWS = [
    {"source": "corpA", "relative_audio_path": "spk1/a.wav", "text_description": ["A deep voice.", "Low and slow."],
     "intrinsic_tags": ["deep", "slow"], "situational_tags": [], "duration": 1.5, "speaker": "s1", "gender": "male",
     "classification_tag": "deep", "extra": 7},
    {"source": "corpB", "relative_audio_path": "b.flac", "text_description": "She sounds happy.",
     "intrinsic_tags": [], "situational_tags": ["Happy"], "duration": 2.0, "speaker": "s2", "gender": "female"},
]  # fmt: skip


def _check_rows(m: Manifest, root: Path) -> None:
    assert len(m) == 2
    r0, r1 = m[0], m[1]
    assert r0["text_description"] == ["A deep voice.", "Low and slow."]
    assert r1["text_description"] == "She sounds happy."
    assert r0["intrinsic_tags"] == ["deep", "slow"] and r1["situational_tags"] == ["Happy"]
    assert r0["duration"] == pytest.approx(1.5) and isinstance(r0["duration"], float)
    assert r0["speaker"] == "s1" and r1["gender"] == "female"
    assert m.audio_path(0) == root / "corpA" / "spk1" / "a.wav"
    assert m.key(1) == "corpB/b.flac"


def test_jsonl(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n\n")
    m = load_manifest(p)
    _check_rows(m, tmp_path)
    assert m[0]["extra"] == 7  # unknown fields are kept
    assert m.lines == [1, 2]


def test_directory_with_manifest_and_audio_root(tmp_path):
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS))
    m = load_manifest(tmp_path, audio_root=tmp_path / "audio")
    _check_rows(m, tmp_path / "audio")


def test_csv_json_lists_and_comma_lists(tmp_path):
    p = tmp_path / "m.csv"
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "source",
                "relative_audio_path",
                "text_description",
                "intrinsic_tags",
                "situational_tags",
                "duration",
                "speaker",
                "gender",
            ]
        )
        w.writerow(
            [
                "corpA",
                "spk1/a.wav",
                json.dumps(ROWS[0]["text_description"]),
                '["deep", "slow"]',
                "",
                "1.5",
                "s1",
                "male",
            ]
        )
        w.writerow(["corpB", "b.flac", "She sounds happy.", "", "Happy", "2.0", "s2", "female"])
    _check_rows(load_manifest(p), tmp_path)


def test_csv_comma_separated_tags(tmp_path):
    p = tmp_path / "m.tsv"
    p.write_text("source\trelative_audio_path\tintrinsic_tags\nc\tx.wav\tdeep, raspy ,slow\n")
    assert load_manifest(p)[0]["intrinsic_tags"] == ["deep", "raspy", "slow"]


def test_parquet(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    p = tmp_path / "m.parquet"
    df = pd.DataFrame([{k: r.get(k) for k in ROWS[0] if k != "extra"} for r in ROWS])
    # Parquet columns are homogeneous: captions are lists on every row (as in the HF datasets).
    df["text_description"] = [ROWS[0]["text_description"], [ROWS[1]["text_description"]]]
    df.to_parquet(p)
    m = load_manifest(p)
    assert m[1]["text_description"] == ["She sounds happy."]
    m[1]["text_description"] = m[1]["text_description"][0]
    _check_rows(m, tmp_path)
    assert m[0]["classification_tag"] == "deep" and m[1]["classification_tag"] is None


def test_hf_saved_to_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [dict(r, text_description=r["text_description"] if isinstance(r["text_description"], list)
                 else [r["text_description"]]) for r in ROWS]  # fmt: skip
    for r in rows:
        r.pop("extra", None)
        r.setdefault("classification_tag", None)
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(rows), "classification_pitch":
                               datasets.Dataset.from_list(rows[:1])})  # fmt: skip
    dd.save_to_disk(str(tmp_path / "hf"))
    m = load_manifest(tmp_path / "hf", split="train", audio_root=tmp_path)
    assert len(m) == 2 and m[0]["intrinsic_tags"] == ["deep", "slow"]
    assert m[1]["text_description"] == ["She sounds happy."]
    assert m.audio_path(0) == tmp_path / "corpA" / "spk1" / "a.wav"
    assert len(load_manifest(tmp_path / "hf", split="classification_pitch")) == 1
    with pytest.raises(InputError, match="choose one"):
        load_manifest(tmp_path / "hf")
    with pytest.raises(InputError, match="no split 'dev'"):
        load_manifest(tmp_path / "hf", split="dev")
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "single"))
    assert len(load_manifest(tmp_path / "single")) == 2


def test_hub_name_offline_is_input_error(monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(InputError, match="official splits"):
        load_manifest("ajd12342/paraspeechclap-eval-intrinsic", split="classification_volumes")
    with pytest.raises(InputError, match="ajd12342/paraspeechcaps-intrinsic-train"):
        load_manifest("ajd12342/paraspeechcaps-intrinsic-train", split="train")


@pytest.mark.parametrize(
    "line, match",
    [
        ('{"relative_audio_path": "a.wav"}', "line 2: missing required field 'source'"),
        ('{"source": "s", "relative_audio_path": 3}', "line 2: field 'relative_audio_path'"),
        ('{"source": "s", "relative_audio_path": "a", "intrinsic_tags": 5}', "line 2: field 'intrinsic_tags'"),
        ('{"source": "s", "relative_audio_path": "a", "duration": "long"}', "line 2: field 'duration'"),
        ('{"source": "s", "relative_audio_path": "a", "duration": -1}', "line 2: field 'duration'"),
        ('{"source": "s", "relative_audio_path": "a", "text_description": [1]}', "line 2: field 'text_description'"),
        ("{not json", "line 2: invalid JSON"),
    ],
)
def test_bad_rows_raise_with_line_and_field(tmp_path, line, match):
    p = tmp_path / "m.jsonl"
    p.write_text(json.dumps(ROWS[1]) + "\n" + line + "\n")
    with pytest.raises(InputError, match=match):
        load_manifest(p)


def test_missing_and_unknown_format(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_manifest(tmp_path / "nope.jsonl")
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(InputError, match="unknown manifest format"):
        load_manifest(tmp_path / "m.txt")


def test_manifest_container_ops(tmp_path):
    m = Manifest(ROWS, tmp_path, "mem")
    assert [r["speaker"] for r in m] == ["s1", "s2"]
    f = m.filter(lambda r: r["gender"] == "female")
    assert len(f) == 1 and f.key(0) == "corpB/b.flac" and f.lines == [2]
    both = Manifest.concat([m, Manifest(ROWS[:1], tmp_path / "other", "o")])
    assert both.audio_path(2) == tmp_path / "other" / "corpA" / "spk1" / "a.wav"
    assert both.audio_path(0) == tmp_path / "corpA" / "spk1" / "a.wav"
    assert m.column("duration") == [1.5, 2.0]
    with pytest.raises(InputError, match="no audio root"):
        Manifest(ROWS).audio_path(0)


def test_caption_choice_and_tags():
    row = ROWS[0]
    assert pick_caption(row) == "A deep voice."  # evaluation: the first, always
    draws = {pick_caption(row, random.Random(s)) for s in range(40)}
    assert draws == set(row["text_description"])
    assert row_tags(ROWS[1]) == ["happy"] and row_tags(ROWS[0]) == ["deep", "slow"]
    assert row_key(ROWS[0]) == "corpA/spk1/a.wav"


def test_style_dataset_pluggable_loader_and_caption_draws(tmp_path):
    calls = []

    def loader(path):
        calls.append(path)
        return np.zeros(160, dtype=np.float32)

    m = Manifest(ROWS, tmp_path)
    train = StyleDataset(m, train=True, audio_loader=loader, seed=1)
    audio, caption, tags, row = train[0]
    assert audio.shape == (160,) and calls == [tmp_path / "corpA" / "spk1" / "a.wav"]
    assert tags == ["deep", "slow"] and row["speaker"] == "s1" and row["index"] == 0
    assert train[0].caption == caption  # same epoch, same item: same draw
    seen = set()
    for epoch in range(30):
        train.set_epoch(epoch)
        seen.add(train[0].caption)
    assert seen == set(ROWS[0]["text_description"])
    ev = StyleDataset(m, train=False, decode=False)
    assert [ev[0].caption for _ in range(5)] == ["A deep voice."] * 5
    assert ev[1].audio == tmp_path / "corpB" / "b.flac"


@pytest.mark.skipif(not (SHARED / "real2" / "manifest.jsonl").exists(), reason="shared data absent")
@pytest.mark.parametrize("name, n", [("real", 751), ("real2", 2017)])
def test_shared_manifests_load(name, n):
    m = load_manifest(SHARED / name / "manifest.jsonl")
    assert len(m) == n
    assert all(m.audio_path(i).is_file() for i in range(0, n, 97))
    assert all(isinstance(r["situational_tags"], list) for r in m)
