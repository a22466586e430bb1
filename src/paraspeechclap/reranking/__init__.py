"""Best-of-N reranking of style-prompted TTS outputs with a ParaSpeechCLAP style score.

- :func:`rerank`: one prompt's candidates ranked by the reward, best first.
- :func:`best_of_n`: many prompts, batched; :func:`write_outputs`: the official output folder.
- :class:`StyleScorer`: cosine(audio, prompt) per candidate; silent clips reported, never chosen.
- :class:`RewardConfig` / :func:`rank_candidates`: the style score combined with WER.
- :func:`load_official` / :func:`load_plain`: the input layouts; :func:`make_pairs`: preference pairs.
- :class:`QualityGate`: blind noise/clipping checks and edge trimming against reward gaming.
"""

from .best_of_n import Selection, best_of_n, rerank, resolve_gate, summary_entry, write_outputs
from .layouts import Problem, RerankSet, load_official, load_plain, read_wer_table
from .pairs import PAIR_RULES, make_pairs, write_pairs
from .quality import GateVerdict, QualityGate
from .reward import Ranking, RewardConfig, composite_reward, rank_candidates, zscore
from .scorer import CandidateIssue, PromptScores, StyleScorer, as_scorer

__all__ = [
    "Selection", "best_of_n", "rerank", "resolve_gate", "summary_entry", "write_outputs",
    "GateVerdict", "QualityGate",
    "Problem", "RerankSet", "load_official", "load_plain", "read_wer_table",
    "PAIR_RULES", "make_pairs", "write_pairs",
    "Ranking", "RewardConfig", "composite_reward", "rank_candidates", "zscore",
    "CandidateIssue", "PromptScores", "StyleScorer", "as_scorer",
]  # fmt: skip
