"""Style scores of candidate clips against their prompt: cosine(audio, text), batched.

:class:`StyleScorer` embeds each prompt once and the candidates of several prompts together, so a
best-of-N run over many prompts uses full batches. Candidates that cannot be scored are reported
per candidate instead of failing the whole call, in two kinds:

- ``"silent"``: the clip decodes but holds nothing to embed (zero samples, digital silence, shorter
  than the encoder's receptive field). Such a clip gets the score ``-inf`` and is ranked last: a
  TTS that produced silence lost, but the input is not broken.
- ``"unreadable"``: missing, undecodable, not finite. The input is broken; callers decide whether to
  fail (default) or to decide the prompt on the remaining candidates (``skip_bad``).

Any object with a ``score_many(prompts, candidate_lists, progress=False) -> list[PromptScores]``
method can stand in for :class:`StyleScorer` (tests use fakes with known scores).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..audio.io import SAMPLE_RATE, SILENCE_PEAK, AudioItem, describe_item, load_audio, read_audio
from ..centering import center_embeddings
from ..errors import AudioError, InputError

if TYPE_CHECKING:
    from ..model import ParaSpeechCLAP

logger = logging.getLogger(__name__)

SILENT = "silent"
UNREADABLE = "unreadable"


@dataclass
class CandidateIssue:
    """A candidate that could not be scored.

    Attributes:
        index: position of the candidate in its prompt's list (0-based).
        item: the candidate's name (its path, or ``array #k``).
        kind: ``"silent"`` (ranked last) or ``"unreadable"`` (an input error).
        message: one line naming the item and the reason.
    """

    index: int
    item: str
    kind: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "item": self.item, "kind": self.kind, "message": self.message}


@dataclass
class PromptScores:
    """Scores of one prompt's candidates.

    Attributes:
        scores: ``(N,)`` float64 cosine similarities; ``-inf`` where the candidate has an issue.
        issues: the candidates that could not be scored.
        quality: with a quality gate, each candidate's verdict (None where it was not scored).
    """

    scores: np.ndarray
    issues: list[CandidateIssue] = field(default_factory=list)
    quality: list[Any] | None = None

    def quality_ok(self) -> np.ndarray | None:
        """``(N,)`` bool: passed the gate (True where there is no verdict); None without a gate."""
        if self.quality is None:
            return None
        return np.array([v is None or v.ok for v in self.quality], dtype=bool)


class Scorer(Protocol):
    """What best-of-N needs from a scorer."""

    def score_many(
        self, prompts: Sequence[str], candidate_lists: Sequence[Sequence[AudioItem]], progress: bool = False
    ) -> list[PromptScores]: ...


def _decoded(item: AudioItem) -> tuple[np.ndarray, int] | None:
    """The raw samples ``(S,)`` and rate of an item, or None when it cannot be decoded at all."""
    if isinstance(item, (str, os.PathLike)):
        try:
            return read_audio(item)  # paths and object-store URIs, decoded as everywhere else
        except AudioError:  # missing, a directory, not audio: all "unreadable"
            return None
    try:
        arr = np.asarray(item, dtype=np.float32)
    except (TypeError, ValueError):
        return None
    return arr.reshape(-1) if arr.ndim <= 1 else arr.mean(axis=int(np.argmin(arr.shape))), SAMPLE_RATE


def issue_kind(item: AudioItem, min_samples: int, sample_rate: int | None = None) -> str:
    """Whether an item that :func:`load_audio` rejected is ``"silent"`` (decodes, nothing to embed)
    or ``"unreadable"`` (missing, undecodable, NaN/inf samples)."""
    got = _decoded(item)
    if got is None:
        return UNREADABLE
    wav, sr = got
    sr = sample_rate or sr
    if wav.size == 0:
        return SILENT
    if not np.isfinite(wav).all():
        return UNREADABLE
    if float(np.abs(wav).max()) < SILENCE_PEAK or wav.shape[0] * SAMPLE_RATE / max(sr, 1) < min_samples:
        return SILENT
    return UNREADABLE


class StyleScorer:
    """Cosine similarity of candidate clips to their style prompt with a ParaSpeechCLAP model.

    Args:
        model: the dual encoder.
        batch_size: clips per forward pass.
        block_clips: how many clips (of several prompts) are decoded and embedded per call, which
            bounds memory; prompts are never split across blocks.
        sample_rate: rate of array candidates (default 16 kHz); files carry their own.
    """

    def __init__(self, model: ParaSpeechCLAP, batch_size: int = 16, block_clips: int = 64,
                 sample_rate: int | None = None, reference: Sequence[AudioItem] | None = None,
                 gate: Any | None = None) -> None:
        """``reference``: clips (e.g. the TTS voice's neutral speech) whose mean embedding is subtracted
        from every candidate's before scoring (:mod:`paraspeechclap.centering`); embedded once.
        ``gate``: a :class:`~paraspeechclap.reranking.quality.QualityGate`: each candidate is checked
        (``PromptScores.quality``) and embedded as the gate prepares it (edge silence trimmed)."""
        self.model = model
        self.gate = gate
        self.batch_size = batch_size
        self.block_clips = max(1, block_clips)
        self.sample_rate = sample_rate
        self.reference = None if reference is None else list(reference)
        self._reference_emb: np.ndarray | None = None

    def score(self, prompt: str, candidates: Sequence[AudioItem]) -> PromptScores:
        """Scores of one prompt's candidates (see :meth:`score_many`)."""
        return self.score_many([prompt], [candidates])[0]

    def score_many(
        self, prompts: Sequence[str], candidate_lists: Sequence[Sequence[AudioItem]], progress: bool = False
    ) -> list[PromptScores]:
        """Score each prompt's candidates: one text embedding per prompt, audio batched across prompts.

        Args:
            prompts: ``P`` style captions.
            candidate_lists: per prompt, its candidates (paths or waveforms).
            progress: show a progress bar over prompts.

        Returns:
            ``P`` :class:`PromptScores`, each with ``(N_i,)`` scores.

        Raises:
            InputError: an empty or non-string prompt.
        """
        from tqdm.auto import tqdm

        text = self.model.embed_text(list(prompts)) if len(prompts) else None  # (P, D), validates captions
        out: list[PromptScores] = []
        bar = tqdm(total=len(prompts), disable=True if not progress else None, unit="prompt", desc="reranking",
                   leave=False)
        for block in self._blocks(candidate_lists):
            out.extend(self._score_block(block, candidate_lists, text))
            bar.update(len(block))
        bar.close()
        return out

    def _blocks(self, candidate_lists: Sequence[Sequence[AudioItem]]) -> list[list[int]]:
        """Consecutive groups of prompt indices holding about ``block_clips`` clips each."""
        blocks: list[list[int]] = [[]]
        size = 0
        for p, cands in enumerate(candidate_lists):
            if blocks[-1] and size + len(cands) > self.block_clips:
                blocks.append([])
                size = 0
            blocks[-1].append(p)
            size += len(cands)
        return [b for b in blocks if b]

    def _score_block(self, block: list[int], candidate_lists: Sequence[Sequence[AudioItem]],
                     text: np.ndarray | None) -> list[PromptScores]:
        min_samples = self.model.audio_branch.min_samples
        wavs: list[np.ndarray] = []
        owner: list[tuple[int, int]] = []  # (position in block, candidate index) of each wav
        results = [PromptScores(np.full(len(candidate_lists[p]), -np.inf),
                                quality=None if self.gate is None else [None] * len(candidate_lists[p]))
                   for p in block]  # fmt: skip
        for b, p in enumerate(block):
            for k, item in enumerate(candidate_lists[p]):
                name = describe_item(item, k)
                try:
                    wav = load_audio(item, self.sample_rate, min_samples=min_samples, name=name)
                    if self.gate is not None:
                        results[b].quality[k], wav = self.gate.apply(wav)  # type: ignore[index]
                    wavs.append(wav)
                    owner.append((b, k))
                except AudioError as exc:
                    kind = issue_kind(item, min_samples, self.sample_rate)
                    results[b].issues.append(CandidateIssue(k, name, kind, str(exc)))
        if wavs:
            emb = self.model.embed_audio(wavs, sample_rate=SAMPLE_RATE, batch_size=self.batch_size)  # (K, D)
            if self.reference is not None:
                emb, _ = center_embeddings(emb, "none", reference=self._reference_embeddings())
            for (b, k), e in zip(owner, emb):
                results[b].scores[k] = float(np.dot(e, text[block[b]]))  # type: ignore[index]
        return results


    def _reference_embeddings(self) -> np.ndarray:
        if self._reference_emb is None:
            try:
                self._reference_emb = self.model.embed_audio(self.reference, sample_rate=self.sample_rate,
                                                             batch_size=self.batch_size)
            except AudioError as exc:
                raise AudioError(f"reference clip: {exc}") from None
        return self._reference_emb


def as_scorer(model_or_scorer: Any, batch_size: int = 16, reference: Sequence[AudioItem] | None = None,
              gate: Any | None = None) -> Scorer:
    """A model becomes a :class:`StyleScorer` (centred on ``reference`` clips, if any; checked by
    ``gate``, if any); an object with ``score_many`` is used as it is (a reference or a gate is then
    an error: it would be ignored)."""
    if hasattr(model_or_scorer, "score_many"):
        if reference is not None or gate is not None:
            raise InputError("reference clips and a quality gate need a model, not a ready scorer")
        return model_or_scorer
    return StyleScorer(model_or_scorer, batch_size=batch_size, reference=reference, gate=gate)
