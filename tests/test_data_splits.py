"""Speaker-disjoint splitting and the committed split of the shared real data."""

from __future__ import annotations

import collections
import importlib.util
import json
import random
from pathlib import Path

import pytest

from paraspeechclap.data.splits import (
    SPLITS,
    load_shared_manifest,
    load_shared_split,
    read_split_file,
    speaker_disjoint_split,
    split_of,
)
from paraspeechclap.errors import InputError

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not (SHARED / "real2" / "manifest.jsonl").exists(), reason="shared data absent")


def _toy_rows(n_speakers: int = 60, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for s in range(n_speakers):
        source = f"corp{s % 4}"
        for k in range(rng.randint(3, 30)):
            rows.append({"source": source, "relative_audio_path": f"{s}/{k}.wav", "speaker": f"spk{s}",
                         "emotion": rng.choice(["anger", "joy", "sad", "neutral"])})  # fmt: skip
    return rows


def test_split_is_speaker_disjoint_complete_and_near_target():
    rows = _toy_rows()
    out = speaker_disjoint_split(rows, (0.7, 0.15, 0.15), seed=3)
    assert len(out) == len(rows) and set(out) == set(SPLITS)
    by_speaker = collections.defaultdict(set)
    for r, s in zip(rows, out):
        by_speaker[r["speaker"]].add(s)
    assert all(len(v) == 1 for v in by_speaker.values())
    share = collections.Counter(out)
    for name, target in zip(SPLITS, (0.7, 0.15, 0.15)):
        assert abs(share[name] / len(rows) - target) < 0.05, share
    for name in SPLITS:  # stratified: every split has every emotion and every corpus
        sub = [r for r, s in zip(rows, out) if s == name]
        assert {r["emotion"] for r in sub} == {"anger", "joy", "sad", "neutral"}
        assert {r["source"] for r in sub} == {"corp0", "corp1", "corp2", "corp3"}


def test_split_deterministic_and_fixed_groups():
    rows = _toy_rows()
    a = speaker_disjoint_split(rows, seed=5, fixed={"spk0": "test", "spk1": "dev"})
    assert a == speaker_disjoint_split(rows, seed=5, fixed={"spk0": "test", "spk1": "dev"})
    assert {s for r, s in zip(rows, a) if r["speaker"] == "spk0"} == {"test"}
    assert {s for r, s in zip(rows, a) if r["speaker"] == "spk1"} == {"dev"}
    rows_missing = [{"source": "x", "relative_audio_path": f"{i}.wav"} for i in range(5)] + rows
    b = speaker_disjoint_split(rows_missing)
    assert len(set(b[:5])) == 1  # rows without a speaker stay together (one group per source)
    with pytest.raises(InputError):
        speaker_disjoint_split(rows, fractions=(0.5, 0.5))
    with pytest.raises(InputError, match="not one of"):
        speaker_disjoint_split(rows, fixed={"spk0": "holdout"})


@needs_shared
def test_shared_split_covers_every_manifest_exactly_once():
    sf = load_shared_split()
    keys_seen = []
    for name in ("real", "real2", "real3"):
        for line in (SHARED / name / "manifest.jsonl").read_text().splitlines():
            row = json.loads(line)
            key = f"{row['source']}/{row['relative_audio_path']}"
            keys_seen.append(key)
            assert sf.rows[key][0] == name
    assert len(keys_seen) == len(set(keys_seen)) == len(sf.rows) == 751 + 2017 + 1860
    assert set(keys_seen) == set(sf.rows)


@needs_shared
def test_shared_split_speaker_disjoint_thorsten_and_emotions():
    rows = [
        json.loads(line) for n in ("real", "real2", "real3")
        for line in (SHARED / n / "manifest.jsonl").read_text().splitlines()
    ]
    spk = collections.defaultdict(set)
    for r in rows:
        spk[r["speaker"]].add(split_of(r))
    assert all(len(v) == 1 for v in spk.values()), {k: v for k, v in spk.items() if len(v) > 1}
    thorsten = [split_of(r) for r in rows if r["source"] == "thorsten"]
    assert thorsten == ["test"] * 8
    corpora = collections.defaultdict(set)
    for r in rows:
        corpora[(split_of(r), r["situational_tags"][0] if r["situational_tags"] else r["emotion"])].add(r["source"])
    for s in SPLITS:
        for label in ("angry", "happy", "saddened", "neutral"):
            assert len(corpora[(s, label)]) >= 3, (s, label, corpora[(s, label)])
    n = collections.Counter(split_of(r) for r in rows)
    assert 0.65 < n["train"] / len(rows) < 0.75


@needs_shared
def test_load_shared_manifest_split_rows():
    sf = load_shared_split()
    test = load_shared_manifest("test", SHARED)
    assert all(split_of(r) == "test" for r in test)
    assert all(test.audio_path(i).is_file() for i in range(0, len(test), 50))
    with pytest.raises(InputError, match="unknown split"):
        load_shared_manifest("validation", SHARED)
    # by default the batches the default model trained on; "all" adds the later ones
    assert {r["source"] for r in test}.isdisjoint({"ucm_es", "emospeech_in"})
    everything = load_shared_manifest("test", SHARED, batches="all")
    assert len(everything) == len(sf.keys("test")) > len(test)
    assert {"ucm_es", "emospeech_in"} <= {r["source"] for r in everything}
    assert len(load_shared_manifest("test", SHARED, batches=["real3"])) == len(everything) - len(test)
    with pytest.raises(InputError, match="unknown shared data batch 'real9'"):
        load_shared_manifest("test", SHARED, batches=["real9"])


@needs_shared
def test_committed_split_matches_the_script(tmp_path):
    spec = importlib.util.spec_from_file_location("make_shared_split", REPO / "scripts" / "make_shared_split.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sf, _, _ = mod.build(SHARED, seed=0, fractions=(0.7, 0.15, 0.15))
    assert sf.rows == load_shared_split().rows
    (tmp_path / "s.json").write_text(sf.dumps())
    assert read_split_file(tmp_path / "s.json").rows == sf.rows  # dumps/read round trip


@needs_shared
def test_a_later_batch_moves_no_row_of_the_earlier_ones(monkeypatch):
    """real3 is split on its own: without it, real and real2 get exactly the committed assignment
    (the default model's train, dev and test speakers)."""
    spec = importlib.util.spec_from_file_location("make_shared_split", REPO / "scripts" / "make_shared_split.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "GROUPS", mod.GROUPS[:1])
    first, _, _ = mod.build(SHARED, seed=0, fractions=(0.7, 0.15, 0.15))
    committed = load_shared_split().rows
    assert first.rows == {k: v for k, v in committed.items() if v[0] in ("real", "real2")}
    assert len(first.rows) == 751 + 2017
