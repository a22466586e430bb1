"""Regenerate the synthetic example clips (``examples/synth_*.flac``) and their entries in ``labels.json``.

Each clip is one style rendered by the synthetic-corpus pipeline with a voice held out of the
default model's training (four eSpeak test voices and Kokoro, an engine it never heard); the
labels are the synthesis controls. Needs the ``synth`` extra.

    python examples/make_synth_examples.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import soundfile as sf

from paraspeechclap.atomic import atomic_write_json
from paraspeechclap.synth.engines import find_voice
from paraspeechclap.synth.grid import NEUTRAL
from paraspeechclap.synth.pipeline import SAMPLE_RATE, ClipSpec, render, sample_params

HERE = Path(__file__).parent
#: file stem -> (voice, the style's non-neutral labels, sentence)
EXAMPLES = {
    "deep": ("espeak:en-us+david", {"pitch_level": "deep"}, "The bakery on the corner opens at six every morning."),
    "high-pitched": ("espeak:en-us+linda", {"pitch_level": "high-pitched"}, "Could you pass me the salt, please?"),
    "fast": ("espeak:en-gb-scotland+m2", {"speaking_rate": "fast"}, "We missed the last train home last night."),
    "slow": ("kokoro:jf_alpha", {"speaking_rate": "slow"}, "Please remember to water the plants on Sunday."),
    "whispered": ("espeak:en-us+grandma", {"voice_quality": "whispered", "pitch_level": None},
                  "I think someone is standing outside the door."),
    "loud": ("kokoro:jm_kumo", {"loudness": "loud"}, "Everyone needs to leave the building right now."),
}


def main() -> None:
    labels_path = HERE / "labels.json"
    labels = json.loads(labels_path.read_text()) if labels_path.is_file() else {}
    for i, (stem, (voice_id, style, text)) in enumerate(EXAMPLES.items()):
        voice = find_voice(voice_id)
        lab = {**NEUTRAL, **style}
        wav = render(ClipSpec(i, voice, text, lab, sample_params(lab, voice, random.Random(1000 + i))))
        name = f"synth_{stem}.flac"
        sf.write(HERE / name, wav, SAMPLE_RATE, subtype="PCM_16")
        labels[name] = {"voice": voice_id, "text": text, **{k: v for k, v in lab.items() if v is not None},
                        "gender": voice.gender}
        print(f"{name}: {voice_id}, {len(wav) / SAMPLE_RATE:.2f} s")
    atomic_write_json(labels_path, labels, indent=1)


if __name__ == "__main__":
    main()
