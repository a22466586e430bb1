"""Offline synthetic style-speech corpus with controlled, physically true labels.

Nothing heavy is imported here; the engines (eSpeak NG, Piper, Kokoro) and WORLD need the
optional extra ``pip install 'paraspeechclap[synth]'`` and load on first use; the Flite engine
needs the ``flite`` program (a system package).

Main entry points:

- :func:`~paraspeechclap.synth.corpus.generate_corpus`: N labelled clips + JSONL manifest.
- :func:`~paraspeechclap.synth.corpus.plan_corpus` / :func:`~paraspeechclap.synth.pipeline.render`:
  the plan and the per-clip renderer.
- :func:`~paraspeechclap.synth.prompted.synthesize_candidates` and
  :func:`~paraspeechclap.synth.prompted.write_rerank_set`: style-prompted candidates for reranking.
- :data:`~paraspeechclap.synth.grid.EXCLUSIONS`: style combinations that cannot be realised.
"""

from .corpus import DEFAULT_MIX, CorpusSummary, generate_corpus, plan_corpus
from .engines import ENGINES, Voice, all_voices, evaluation_voices, find_voice, get_engine, select_voices
from .grid import EXCLUSIONS, NEUTRAL, STYLE_ATTRIBUTES, allowed_values, is_realisable, plan_styles, valid_combinations
from .pipeline import ClipSpec, render, sample_params
from .prompted import Candidate, Prompt, load_prompts, plan_candidates, synthesize_candidates, write_rerank_set

__all__ = [
    "DEFAULT_MIX",
    "ENGINES",
    "EXCLUSIONS",
    "NEUTRAL",
    "STYLE_ATTRIBUTES",
    "Candidate",
    "ClipSpec",
    "CorpusSummary",
    "Prompt",
    "Voice",
    "all_voices",
    "allowed_values",
    "evaluation_voices",
    "find_voice",
    "generate_corpus",
    "get_engine",
    "is_realisable",
    "load_prompts",
    "plan_candidates",
    "plan_corpus",
    "plan_styles",
    "render",
    "sample_params",
    "select_voices",
    "synthesize_candidates",
    "valid_combinations",
    "write_rerank_set",
]  # fmt: skip
