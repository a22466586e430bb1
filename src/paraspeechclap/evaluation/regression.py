"""A fixed labelled regression set: what a new default model must keep hearing.

Four parts, each scored zero-shot with the attribute sets' prompt ensembles:

* ``examples``: the clips of ``examples/`` (CC0 recordings and synthetic clips, labels in
  ``examples/labels.json``): the share of their known labels that are predicted;
* ``synthetic``: :data:`SYNTH_CLIPS` clips synthesised on the spot (seeded, byte-identical every time)
  with the default model's held-out test voices and Kokoro (an engine it never heard), speaking the
  test sentences (no training corpus speaks them): UAR of each of :data:`SYNTH_SETS`;
* ``official``: :data:`OFFICIAL_CLIPS` clips of the official-tag recipes (:mod:`paraspeechclap.synth.tags`,
  every voice-tag and delivery-tag pair once) rendered on the spot with the same voices and sentences:
  UAR of each official intrinsic set among the tags the recipes produce;
* ``real_test``: the test speakers of the shared real speech (when ``../shared`` is present): UAR
  of 4- and 8-class emotion and gender.

``tests/test_shipped_model.py`` holds the shipped model to floors (``tests/shipped_model_floors.json``:
the value measured by ``benchmarks/regression.py`` minus a stated margin); the model card lists them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .classification import score_attribute_set

#: the checkout's ``examples/`` folder (the regression set is a development tool: it needs a checkout)
EXAMPLES_DIR = Path(__file__).resolve().parents[3] / "examples"
EXAMPLE_SETS = ("emotion", "emotion8", "gender", "pitch_level", "speaking_rate", "loudness", "voice_quality",
                "whisper")
SYNTH_SETS = ("pitch_level", "speaking_rate", "loudness", "whisper", "voice_quality", "gender")
REAL_SETS = ("emotion", "emotion8", "gender")
#: the synthetic part: clips, plan seed and engine shares (eSpeak's held-out test voices, Kokoro's voices)
SYNTH_CLIPS, SYNTH_SEED, SYNTH_MIX = 64, 11, {"espeak": 0.75, "kokoro": 0.25}
#: the official part: one clip per (voice tag, delivery tag) pair, scored on these sets
OFFICIAL_CLIPS, OFFICIAL_SETS = 88, ("pitch", "texture", "volume", "clarity", "rhythm")


def example_clips(examples_dir: Path = EXAMPLES_DIR) -> tuple[list[str], list[dict[str, Any]]]:
    """Paths and label rows of the example clips (sorted by name)."""
    labels = json.loads((examples_dir / "labels.json").read_text(encoding="utf-8"))
    names = sorted(labels)
    return [str(examples_dir / n) for n in names], [labels[n] for n in names]


def _clips_of(folder: Path) -> tuple[list[str], list[dict[str, Any]]]:
    from ..data.manifest import load_manifest

    manifest = load_manifest(folder / "manifest.jsonl")
    return [str(manifest.audio_path(i)) for i in range(len(manifest))], [manifest[i] for i in range(len(manifest))]


def synthetic_clips(cache_root: Path | None = None, jobs: int = 2) -> tuple[list[str], list[dict[str, Any]]]:
    """Paths and rows of the synthetic part, generated once into the cache (needs the ``synth`` extra)."""
    from ..synth import evaluation_voices, generate_corpus
    from ..synth.corpus import PLAN_VERSION
    from ..training.features import default_cache_root

    out = (cache_root or default_cache_root()) / "regression" / f"synth-n{SYNTH_CLIPS}-s{SYNTH_SEED}-v{PLAN_VERSION}"
    if not (out / "manifest.jsonl").is_file():
        generate_corpus(out, SYNTH_CLIPS, seed=SYNTH_SEED, jobs=jobs, voices=evaluation_voices("test"), mix=SYNTH_MIX,
                        sentences="test")
    return _clips_of(out)


def official_clips(cache_root: Path | None = None, jobs: int = 2) -> tuple[list[str], list[dict[str, Any]]]:
    """Paths and rows of the official part, rendered once into the cache (needs the ``synth`` extra)."""
    from ..synth import evaluation_voices
    from ..synth.sentences import TEST_SENTENCES
    from ..synth.tags import RECIPES_VERSION, generate_tagged, plan_tagged
    from ..training.features import default_cache_root

    out = (cache_root or default_cache_root()) / "regression" / f"official-n{OFFICIAL_CLIPS}-v{RECIPES_VERSION}"
    if not (out / "manifest.jsonl").is_file():
        generate_tagged(out, plan_tagged(OFFICIAL_CLIPS, evaluation_voices("test"), TEST_SENTENCES, "regression"), jobs)
    return _clips_of(out)


def real_test_clips() -> tuple[list[str], list[dict[str, Any]]]:
    """Paths and rows of the shared real speech's test speakers (raises if the shared data is missing)."""
    from ..data.splits import load_shared_manifest

    manifest = load_shared_manifest("test")
    return [str(manifest.audio_path(i)) for i in range(len(manifest))], [manifest[i] for i in range(len(manifest))]


def known_label_share(model: Any, audio: np.ndarray, rows: Sequence[dict[str, Any]],
                      sets: Sequence[str] = EXAMPLE_SETS) -> tuple[int, int]:
    """Known labels predicted and known labels in all, over every set that gives a clip a gold label."""
    right = total = 0
    for name in sets:
        m = score_attribute_set(model, audio, rows, name)
        if m is None:
            continue
        right += round(m["accuracy"] * m["count"])
        total += m["count"]
    return right, total


def set_uars(model: Any, audio: np.ndarray, rows: Sequence[dict[str, Any]], sets: Sequence[str],
             among: Callable[[str], Sequence[str]] | None = None) -> dict[str, float]:
    """UAR over the classes present, per set with gold labels; ``among`` maps a set to the candidates
    chosen among (None: all of the set's)."""
    out = {}
    for name in sets:
        m = score_attribute_set(model, audio, rows, name, among=among(name) if among else None)
        if m is not None:
            out[name] = m["uar_present"]
    return out


def _produced(name: str) -> list[str]:
    """The official tags of set ``name`` that the recipes produce (imported late: synth is an extra)."""
    from ..synth.tags import produced_tags

    return produced_tags(name)


#: the parts: how their clips are loaded, the sets scored on them (None: the examples' known labels) and
#: the candidates each set chooses among (None: all of them)
PARTS = {"examples": (example_clips, None, None), "synthetic": (synthetic_clips, SYNTH_SETS, None),
         "official": (official_clips, OFFICIAL_SETS, _produced), "real_test": (real_test_clips, REAL_SETS, None)}


def regression_scores(model: Any, parts: Sequence[str] = tuple(PARTS), batch_size: int = 16) -> dict[str, float]:
    """``{"<part>/<set>": value}``: ``examples/known_labels`` (a share) and a UAR per set of the others."""
    out: dict[str, float] = {}
    for part in parts:
        load, sets, among = PARTS[part]
        paths, rows = load()
        audio = model.embed_audio(paths, batch_size=batch_size)
        if sets is None:
            right, total = known_label_share(model, audio, rows)
            out[f"{part}/known_labels"] = right / total
            continue
        uars = set_uars(model, audio, rows, sets, among)
        out.update({f"{part}/{k}": v for k, v in uars.items()})
    return out
