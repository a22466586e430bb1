"""Best-of-N selection: score candidates, rank them by the reward, write the winners.

:func:`rerank` is the one-prompt Python API; :func:`best_of_n` decides many prompts with batched
scoring; :func:`write_outputs` writes the official output folder (``audios/{i}.wav``, the per-prompt
text files, the winners' WER/transcription lines and ``selection_summary.json``) atomically: the
folder is built under a temporary name and renamed into place, so a failed run leaves nothing.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_json
from ..audio.io import AudioItem, describe_item
from ..errors import AudioError, InputError
from .layouts import PROMPT_TEXT_FILES, RerankSet
from .reward import Ranking, RewardConfig, rank_candidates
from .scorer import SILENT, CandidateIssue, PromptScores, as_scorer

logger = logging.getLogger(__name__)

MISSING = "missing"
SUMMARY_FILE = "selection_summary.json"
INFO_FILE = "rerank_info.json"


@dataclass
class Selection:
    """The decision for one prompt.

    Attributes:
        prompt_idx: 0-based prompt index.
        prompt: the style prompt.
        names: display name of each of the ``N`` candidates.
        scores: ``(N,)`` style scores (cosine; ``-inf`` for candidates that have none).
        ranking: candidates ranked by the reward (see :mod:`~paraspeechclap.reranking.reward`).
        wer: ``(N,)`` word error rates used by the reward, or None.
        issues: candidates that were missing, unreadable (skipped) or silent (ranked last).
        quality: with a quality gate, each candidate's verdict (None where it was not scored).
    """

    prompt_idx: int
    prompt: str
    names: list[str]
    scores: np.ndarray
    ranking: Ranking
    wer: np.ndarray | None = None
    issues: list[CandidateIssue] = field(default_factory=list)
    quality: list[Any] | None = None

    @property
    def best(self) -> int | None:
        """0-based index of the winner; None when no candidate could be scored."""
        return self.ranking.best

    @property
    def skipped(self) -> list[CandidateIssue]:
        return [i for i in self.issues if i.kind != SILENT]

    @property
    def silent(self) -> list[CandidateIssue]:
        return [i for i in self.issues if i.kind == SILENT]


def json_score(x: float) -> float | None:
    """A score for JSON: None (``null``) where it is not finite (``-inf`` for unscored candidates)."""
    return float(x) if math.isfinite(float(x)) else None


def score_candidates(scorer: Any, prompts: Sequence[str], candidate_lists: Sequence[Sequence[AudioItem | None]],
                     names: Sequence[Sequence[str]], progress: bool = False) -> list[PromptScores]:
    """Score candidate lists in which ``None`` marks a missing candidate (reported, never scored)."""
    present = [[c for c in cands if c is not None] for cands in candidate_lists]
    scored = scorer.score_many(list(prompts), present, progress=progress) if prompts else []
    out = []
    for cands, label, ps in zip(candidate_lists, names, scored):
        pos = [k for k, c in enumerate(cands) if c is not None]  # present position -> candidate index
        scores = np.full(len(cands), -np.inf)
        scores[pos] = ps.scores
        issues = [CandidateIssue(k, label[k], MISSING, f"{label[k]}: missing candidate")
                  for k, c in enumerate(cands) if c is None]  # fmt: skip
        issues += [CandidateIssue(pos[i.index], label[pos[i.index]], i.kind, i.message) for i in ps.issues]
        quality = None
        if ps.quality is not None:
            quality = [None] * len(cands)
            for j, verdict in zip(pos, ps.quality):
                quality[j] = verdict
        out.append(PromptScores(scores, sorted(issues, key=lambda i: i.index), quality))
    return out


def best_of_n(
    model: Any,
    prompts: Sequence[str],
    candidate_lists: Sequence[Sequence[AudioItem | None]],
    wer: Sequence[np.ndarray] | None = None,
    config: RewardConfig | None = None,
    names: Sequence[Sequence[str]] | None = None,
    progress: bool = False,
    gate: Any | None = None,
) -> list[Selection]:
    """Decide every prompt: score its candidates and rank them by the reward.

    Args:
        model: a ParaSpeechCLAP model, or a scorer (an object with ``score_many``).
        prompts: ``P`` style prompts.
        candidate_lists: per prompt, its candidates (paths or waveforms; None = missing).
        wer: per prompt ``(N_i,)`` word error rates (NaN unknown), for ``config``.
        config: the reward.
        names: display names of the candidates (default: the paths).
        progress: show a progress bar.
        gate: a :class:`~paraspeechclap.reranking.quality.QualityGate` (needs a model): candidates that
            fail it rank after those that pass, and all are embedded with their edge silence trimmed.

    Returns:
        ``P`` selections. Problems are recorded in ``Selection.issues``, never raised here.
    """
    config = config or RewardConfig()
    if len(candidate_lists) != len(prompts):
        raise InputError(f"{len(prompts)} prompts but {len(candidate_lists)} candidate lists")
    if config.uses_wer and wer is None:
        raise InputError("the reward uses word error rates but none were given (wer_per_example.txt or --wer)")
    if names is None:
        names = [[describe_item(c, k) if c is not None else f"candidate {k + 1}" for k, c in enumerate(cands)]
                 for cands in candidate_lists]  # fmt: skip
    results = score_candidates(as_scorer(model, gate=gate), prompts, candidate_lists, names, progress)
    out = []
    for i, (prompt, ps) in enumerate(zip(prompts, results)):
        w = None if wer is None else np.asarray(wer[i], dtype=np.float64)
        ranking = rank_candidates(ps.scores, w, config, ps.quality_ok())
        out.append(Selection(i, prompt, list(names[i]), ps.scores, ranking, w, ps.issues, ps.quality))
    return out


def rerank(
    model: Any,
    prompt: str,
    candidates: Sequence[AudioItem],
    *,
    wer: Sequence[float] | None = None,
    wer_threshold: float | None = None,
    wer_weight: float = 0.0,
    skip_bad: bool = False,
    quality_gate: Any = False,
) -> list[tuple[AudioItem, float]]:
    """Rank one prompt's candidates, best first.

    Args:
        model: a ParaSpeechCLAP model (or a scorer with ``score_many``).
        prompt: the style prompt (embedded once).
        candidates: ``N`` paths or 16 kHz waveforms, embedded in batches.
        wer: ``N`` word error rates, for ``wer_threshold`` / ``wer_weight``.
        wer_threshold: candidates with a higher WER are ranked after the others.
        wer_weight: λ of the reward ``z(style) - λ z(WER)``.
        skip_bad: leave unreadable candidates out (logged) instead of raising.
        quality_gate: True (the default :class:`~paraspeechclap.reranking.quality.QualityGate`) or a
            gate: noisy or clipped candidates rank after the others, and every candidate is scored
            with its edge silence trimmed (``docs/rerank.md``, "Reward gaming").

    Returns:
        ``(candidate, style score)`` pairs in reward order; ties keep the lowest index first.
        Silent or empty candidates come last with the score ``-inf`` (and a logged warning).

    Raises:
        AudioError: an unreadable candidate (without ``skip_bad``).
    """
    config = RewardConfig(wer_threshold, wer_weight)
    w = None if wer is None else [np.asarray(wer, dtype=np.float64)]
    sel = best_of_n(model, [prompt], [list(candidates)], w, config, gate=resolve_gate(quality_gate))[0]
    for issue in sel.issues:
        if issue.kind != SILENT and not skip_bad:
            raise AudioError(issue.message)
        logger.warning("%s; %s", issue.message, "ranked last" if issue.kind == SILENT else "skipped")
    dropped = {i.index for i in sel.skipped}
    return [(candidates[k], float(sel.scores[k])) for k in sel.ranking.order if k not in dropped]


def resolve_gate(quality_gate: Any, min_snr_db: float | None = None) -> Any | None:
    """``True`` -> the default gate (with ``min_snr_db`` as its SNR threshold when given),
    ``False``/None -> None, a gate -> itself. A threshold without ``True`` is a caller's error (each
    caller says so first, in its own words: a flag, a request field, a keyword)."""
    if quality_gate is True:
        from .quality import QualityGate

        return QualityGate() if min_snr_db is None else QualityGate(min_snr_db=min_snr_db)
    if min_snr_db is not None:
        raise ValueError("min_snr_db is the threshold of the default gate: pass quality_gate=True")
    return quality_gate or None


def summary_entry(sel: Selection, config: RewardConfig | None = None, with_names: bool = False) -> dict[str, Any]:
    """One prompt's entry of ``selection_summary.json`` in the official form, plus optional keys.

    Official keys: ``prompt_idx``, ``text_prompt``, ``best_iteration_idx`` (1-based; null when no
    candidate could be scored), ``best_score`` (cosine), ``all_scores`` (per candidate; null for an
    unscored one). Added when relevant: ``skipped`` and ``silent`` (the issues), ``all_wer``,
    ``all_rewards``, ``best_reward`` and ``wer_fallback`` (a composite reward), ``quality`` and
    ``failed_quality_gate`` (1-based; with a quality gate), ``candidates`` and
    ``best_candidate`` (the plain layout's file names).
    """
    config = config or RewardConfig()
    best = sel.best
    entry: dict[str, Any] = {
        "prompt_idx": sel.prompt_idx,
        "text_prompt": sel.prompt,
        "best_iteration_idx": None if best is None else best + 1,
        "best_score": None if best is None else json_score(sel.scores[best]),
        "all_scores": [json_score(s) for s in sel.scores],
    }
    if sel.skipped:
        entry["skipped"] = [{**i.as_dict(), "iteration_idx": i.index + 1} for i in sel.skipped]
    if sel.silent:
        entry["silent"] = [{**i.as_dict(), "iteration_idx": i.index + 1} for i in sel.silent]
    if config.uses_wer and sel.wer is not None:
        entry["all_wer"] = [json_score(w) for w in sel.wer]
        entry["all_rewards"] = [json_score(r) for r in sel.ranking.reward]
        entry["best_reward"] = None if best is None else json_score(sel.ranking.reward[best])
        entry["wer_fallback"] = sel.ranking.fallback
    if sel.quality is not None:
        entry["quality"] = [None if v is None else v.as_dict() for v in sel.quality]
        entry["failed_quality_gate"] = [k + 1 for k, v in enumerate(sel.quality) if v is not None and not v.ok]
    if with_names:
        entry["candidates"] = list(sel.names)
        entry["best_candidate"] = None if best is None else sel.names[best]
    return entry


def write_outputs(
    out_dir: str | os.PathLike,
    rset: RerankSet,
    selections: Sequence[Selection],
    config: RewardConfig | None = None,
    info: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the output folder atomically (built beside it, then renamed into place).

    Contents: ``audios/{i}{ext}`` (a copy of each winner; a prompt without a winner gets none),
    the per-prompt text files (official: copies from ``iter_1``; plain: ``input_descriptions.txt``
    from the prompts), the winners' lines of ``wer_per_example.txt`` / ``output_transcriptions.txt``
    (a blank line without a winner), ``selection_summary.json`` and ``rerank_info.json`` (``info``).

    Raises:
        InputError: ``out_dir`` exists and ``overwrite`` is False.
    """
    config = config or RewardConfig()
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise InputError(f"{out}: output folder exists; use --overwrite or another name")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _fill(tmp, rset, selections, config, info or {})
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _fill(tmp: Path, rset: RerankSet, selections: Sequence[Selection], config: RewardConfig,
          info: dict[str, Any]) -> None:
    audios = tmp / "audios"
    audios.mkdir()
    for sel in selections:
        if sel.best is not None:
            src = rset.candidates[sel.prompt_idx][sel.best]
            shutil.copyfile(src, audios / f"{sel.prompt_idx}{src.suffix.lower() or '.wav'}")
    if rset.layout == "official":
        for name, path in rset.text_files.items():
            shutil.copyfile(path, tmp / name)
    else:
        (tmp / PROMPT_TEXT_FILES[0]).write_text("".join(f"{p}\n" for p in rset.prompts), encoding="utf-8")
    for name, rows in rset.lines.items():
        chosen = [rows[s.prompt_idx][s.best] if s.best is not None else "" for s in selections]
        (tmp / name).write_text("".join(f"{line}\n" for line in chosen), encoding="utf-8")
    summary = [summary_entry(s, config, with_names=rset.layout == "plain") for s in selections]
    atomic_write_json(tmp / SUMMARY_FILE, summary)
    atomic_write_json(tmp / INFO_FILE, info)


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``, replacing an old ``out`` only once the new one is complete."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rmdir(old)
    os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
