"""Style-prompted synthesis: N candidates per caption with known, partly wrong styles (for reranking).

A stand-in for a style-prompted TTS whose outputs follow the prompt only sometimes. Given a
prompt's labels (``{"pitch_level": "deep", "speaking_rate": "slow", "gender": "male"}``), every
candidate is really synthesised, and each prompted attribute is realised as prompted with
probability ``p_match`` (default 0.5), otherwise as a different value of that attribute.
Attributes the prompt does not mention are realised neutral (``medium``, ``measured``, ``normal``,
``modal``, ``crisp``). Each candidate's *true* labels are recorded, so a reranker's choice can be
scored against ground truth.

:func:`write_rerank_set` writes the layout read by best-of-N reranking (the official one)::

    DIR/iter_{k}/audios/{i}.wav        candidate k (1..N) of prompt i (0-based), 16 kHz 16-bit
    DIR/iter_1/input_descriptions.txt  one caption per prompt (line i)
    DIR/iter_1/input_texts.txt         the spoken sentence per prompt
    DIR/iter_1/input_genders.txt       the prompted gender per prompt ("" when not prompted)
    DIR/iter_{k}/output_transcriptions.txt, wer_per_example.txt   (the text, and 0.0: the official
                                        reranker requires both files in every iteration folder)
    DIR/candidates.jsonl               one row per (prompt, candidate): prompted and true labels
    DIR/prompts.jsonl                  the resolved prompts
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_text
from ..errors import InputError
from .corpus import RenderTask, check_config, check_engines, run_tasks, stream, style_labels
from .engines import Voice, select_voices
from .grid import NEUTRAL, STYLE_ATTRIBUTES, allowed_values, plan_styles
from .pipeline import SAMPLE_RATE, ClipSpec, render, sample_params
from .sentences import SENTENCE_POOLS

PROMPT_FIELDS: tuple[str, ...] = ("gender", *STYLE_ATTRIBUTES)
GENDERS = ("male", "female")
#: ParaSpeechCaps tags (and our own) that name one of our label values.
_TAG_TO_LABEL: dict[str, tuple[str, str]] = {
    "deep": ("pitch_level", "deep"), "high-pitched": ("pitch_level", "high-pitched"),
    "slow": ("speaking_rate", "slow"), "measured": ("speaking_rate", "measured"), "fast": ("speaking_rate", "fast"),
    "soft": ("loudness", "soft"), "loud": ("loudness", "loud"),
    "whispered": ("voice_quality", "whispered"), "breathy": ("voice_quality", "breathy"),
    "raspy": ("voice_quality", "raspy"), "vocal-fry": ("voice_quality", "creaky"),
    "crisp": ("clarity", "crisp"), "muffled": ("clarity", "muffled"), "reverberant": ("clarity", "reverberant"),
    "telephone": ("clarity", "telephone"),
}  # fmt: skip


@dataclass(frozen=True)
class Prompt:
    """One style prompt.

    Attributes:
        labels: prompted label fields (any subset of ``gender`` and the style attributes).
        text: sentence to speak (None: one is picked from the sentence list).
        description: the caption (None: made from ``labels`` by ``describe``).
    """

    labels: Mapping[str, str]
    text: str | None = None
    description: str | None = None


@dataclass
class Candidate:
    """One synthesised candidate.

    Attributes:
        audio: (S,) float32 at 16 kHz (None when only planned).
        spec: what was synthesised (voice, text, true style labels, parameters).
        labels: true label fields, ``gender`` included (unlabelled attributes left out).
        matched: per prompted field, whether the realised value equals the prompted one.
    """

    spec: ClipSpec
    labels: dict[str, str]
    matched: dict[str, bool]
    audio: np.ndarray | None = field(default=None, repr=False)


def normalise_prompt_labels(raw: Mapping[str, Any], where: str = "prompt") -> dict[str, str]:
    """Validate prompt labels: label fields, or ``intrinsic_tags``/``situational_tags`` naming our values.

    Spellings go through the label maps (``"high pitched"`` -> ``high-pitched``). Other keys
    (``emotion``, ``text`` ...) are ignored.

    Raises:
        InputError: a value outside the vocabulary, or two tags for one attribute.
    """
    from ..data.vocabulary import map_label

    out: dict[str, str] = {}
    for f in PROMPT_FIELDS:
        if raw.get(f) in (None, ""):
            continue
        value = map_label(raw[f], f)
        allowed = GENDERS if f == "gender" else STYLE_ATTRIBUTES[f]
        if value not in allowed:
            raise InputError(f"{where}: {f}={raw[f]!r} is not one of {', '.join(allowed)}")
        out[f] = value
    for key in ("intrinsic_tags", "situational_tags"):
        for tag in raw.get(key) or ():
            hit = _TAG_TO_LABEL.get(str(tag).strip().lower())
            if hit is None:
                continue
            f, value = hit
            if out.get(f, value) != value:
                raise InputError(f"{where}: tags give two values for {f} ({out[f]}, {value})")
            out[f] = value
    return out


def _realise(prompted: str | None, allowed: Sequence[str], neutral: str | None, p: float, rng: random.Random):
    """Realised value for one attribute (None when nothing is allowed)."""
    if not allowed:
        return None
    if prompted is None:
        return neutral if neutral in allowed else allowed[0]
    others = [v for v in allowed if v != prompted]
    if prompted in allowed and (rng.random() < p or not others):
        return prompted
    return rng.choice(others) if others else allowed[0]


def realise_labels(
    prompted: Mapping[str, str], rng: random.Random, p_match: float = 0.5, genders: Sequence[str] = GENDERS
) -> tuple[dict[str, str | None], str, dict[str, bool]]:
    """Draw the true style of one candidate.

    Each prompted attribute keeps its value with probability ``p_match``, otherwise takes another
    allowed value (uniformly); values that the realised voice quality excludes are never used
    (whispered speech has no pitch level). Unprompted attributes are neutral; an unprompted gender
    is drawn uniformly.

    Returns:
        ``(style, gender, matched)``: style labels (None = unlabelled), the gender, and per
        prompted field whether it was realised as prompted.
    """
    if "gender" in prompted:
        gender = _realise(prompted["gender"], list(genders), None, p_match, rng)
    else:
        gender = rng.choice(list(genders))
    style: dict[str, str | None] = {}
    for attr in STYLE_ATTRIBUTES:
        style[attr] = _realise(prompted.get(attr), allowed_values(attr, style), NEUTRAL[attr], p_match, rng)
    matched = {f: (gender if f == "gender" else style.get(f)) == v for f, v in prompted.items()}
    return style, gender, matched


def plan_candidates(
    prompts: Sequence[Prompt],
    n_candidates: int,
    seed: int = 0,
    p_match: float = 0.5,
    voices: Sequence[Voice] | None = None,
    sentences: str = "train",
) -> list[list[Candidate]]:
    """Plan (without synthesising) ``n_candidates`` per prompt.

    Every (prompt, candidate) pair has its own random stream, so plans do not depend on the
    number of prompts, candidates or worker processes. A prompt without a text gets one from the
    ``sentences`` pool (:data:`~paraspeechclap.synth.sentences.SENTENCE_POOLS`).

    Returns:
        ``out[i][k]``: candidate ``k`` of prompt ``i`` (spec index = ``i * n_candidates + k``).

    Raises:
        InputError: ``n_candidates`` < 1 or ``p_match`` outside [0, 1].
    """
    if n_candidates < 1:
        raise InputError(f"--candidates must be >= 1, got {n_candidates}")
    if not 0.0 <= p_match <= 1.0:
        raise InputError(f"--p-match must be in [0, 1], got {p_match}")
    if sentences not in SENTENCE_POOLS:
        raise InputError(f"unknown sentence pool {sentences!r}; choose from {', '.join(SENTENCE_POOLS)}")
    pool_texts = SENTENCE_POOLS[sentences]
    pool = sorted(voices if voices is not None else select_voices(), key=lambda v: v.id)
    genders = [g for g in GENDERS if any(v.gender == g for v in pool)]
    out: list[list[Candidate]] = []
    for i, prompt in enumerate(prompts):
        text = prompt.text or stream(seed, f"prompt-text:{i}").choice(list(pool_texts))
        row = []
        for k in range(n_candidates):
            rng = stream(seed, f"candidate:{i}:{k}")
            style, gender, matched = realise_labels(prompt.labels, rng, p_match, genders)
            voice = rng.choice([v for v in pool if v.gender == gender])
            spec = ClipSpec(i * n_candidates + k, voice, text, style, sample_params(style, voice, rng))
            row.append(Candidate(spec, style_labels(spec), matched))
        out.append(row)
    return out


def synthesize_candidates(
    labels: Mapping[str, Any],
    n: int = 10,
    text: str | None = None,
    p_match: float = 0.5,
    seed: int = 0,
    voices: Sequence[Voice] | None = None,
) -> list[Candidate]:
    """Synthesise ``n`` candidates for one prompt, in memory.

    Args:
        labels: prompted label fields (or ``intrinsic_tags``/``situational_tags``).
        n: number of candidates.
        text: sentence to speak (default: one from the sentence list).
        p_match: probability that each prompted attribute is realised as prompted.
        seed: random seed.
        voices: voice pool (default: all voices).

    Returns:
        ``n`` candidates with ``audio`` (S,) float32 at 16 kHz and their true labels.
    """
    prompt = Prompt(normalise_prompt_labels(labels), text)
    cands = plan_candidates([prompt], n, seed, p_match, voices)[0]
    check_engines(sorted({c.spec.voice.engine for c in cands}))
    for c in cands:
        c.audio = render(c.spec)
    return cands


def load_prompts(path: str | os.PathLike) -> list[Prompt]:
    """Read prompts from JSONL: label fields (or tags), optional ``text`` and ``text_description``.

    A manifest works as a prompt file: its label fields (or tags) are the prompt.

    Raises:
        InputError: unreadable file, bad JSON, a line with no usable label, or bad values.
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"{p}: cannot read prompts ({exc.strerror})") from None
    prompts = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise InputError(f"{p}:{n}: not valid JSON") from None
        if not isinstance(row, dict):
            raise InputError(f"{p}:{n}: expected a JSON object")
        labels = normalise_prompt_labels(row, f"{p}:{n}")
        if not labels:
            raise InputError(f"{p}:{n}: no style label or known tag to prompt with")
        desc = row.get("text_description")
        desc = desc[0] if isinstance(desc, list) and desc else desc
        prompts.append(Prompt(labels, row.get("text") or None, desc or None))
    if not prompts:
        raise InputError(f"{p}: no prompts")
    return prompts


def random_prompts(k: int, seed: int = 0) -> list[Prompt]:
    """``k`` prompts from the balanced style grid: each names its non-neutral attributes and a gender."""
    styles = plan_styles(k, stream(seed, "prompt-styles"))
    rng = stream(seed, "prompt-genders")
    out = []
    for style in styles:
        labels = {a: v for a, v in style.items() if v is not None and v != NEUTRAL[a]}
        labels["gender"] = rng.choice(GENDERS)
        out.append(Prompt(labels))
    return out


def _caption(prompt: Prompt, seed: int, i: int) -> str:
    from ..data.captions import describe

    text = prompt.description or describe(prompt.labels, stream(seed, f"prompt-caption:{i}"))
    return " ".join(text.split())  # one line per prompt


def write_rerank_set(
    out_dir: str | os.PathLike,
    prompts: Sequence[Prompt],
    n_candidates: int = 10,
    p_match: float = 0.5,
    seed: int = 0,
    jobs: int = 1,
    voices: Sequence[Voice] | None = None,
    overwrite: bool = False,
    sentences: str = "train",
) -> dict[str, Any]:
    """Synthesise ``n_candidates`` per prompt into the best-of-N layout (see the module docstring);
    prompts without a text are spoken with one from the ``sentences`` pool.

    Returns:
        A summary: ``out_dir``, ``prompts``, ``candidates``, ``generated``, ``match_rate`` (fraction of
        prompted fields realised as prompted).
    """
    out = Path(out_dir)
    pool = list(voices) if voices is not None else select_voices()
    plan = plan_candidates(prompts, n_candidates, seed, p_match, pool, sentences)
    check_engines(sorted({c.spec.voice.engine for row in plan for c in row}))
    config = {"mode": "prompted", "seed": seed, "p_match": p_match, "candidates": n_candidates,
              "voices": [v.id for v in pool], "sample_rate": SAMPLE_RATE}  # fmt: skip
    if sentences != "train":
        config["sentences"] = sentences
    check_config(out, config, overwrite)
    rel = {(i, k): f"iter_{k + 1}/audios/{i}.wav" for i in range(len(plan)) for k in range(n_candidates)}
    tasks = [RenderTask(c.spec, str(out / rel[i, k]), "wav", not overwrite)
             for i, row in enumerate(plan) for k, c in enumerate(row)]  # fmt: skip
    results = list(run_tasks(tasks, jobs, desc="candidates"))
    measured = {idx: m for idx, _, m in results}
    captions = [_caption(p, seed, i) for i, p in enumerate(prompts)]
    texts = [row[0].spec.text for row in plan]
    _write_text_files(out, prompts, captions, texts, n_candidates)
    rows, hits, total = [], 0, 0
    for i, row in enumerate(plan):
        for k, c in enumerate(row):
            rows.append(_candidate_row(i, k, c, prompts[i], captions[i], rel[i, k], measured[c.spec.index]))
            hits += sum(c.matched.values())
            total += len(c.matched)
    atomic_write_text(out / "candidates.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    prompt_rows = [{"prompt_index": i, "labels": dict(p.labels), "text": texts[i], "text_description": captions[i]}
                   for i, p in enumerate(prompts)]  # fmt: skip
    atomic_write_text(out / "prompts.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in prompt_rows))
    return {"out_dir": str(out), "prompts": len(prompts), "candidates": n_candidates, "clips": len(tasks),
            "generated": sum(gen for _, gen, _ in results),
            "match_rate": round(hits / total, 4) if total else None}  # fmt: skip


def _write_text_files(out: Path, prompts: Sequence[Prompt], captions: list[str], texts: list[str], n: int) -> None:
    lines = lambda items: "".join(f"{x}\n" for x in items)
    first = out / "iter_1"
    atomic_write_text(first / "input_descriptions.txt", lines(captions))
    atomic_write_text(first / "input_texts.txt", lines(texts))
    atomic_write_text(first / "input_genders.txt", lines(p.labels.get("gender", "") for p in prompts))
    for k in range(1, n + 1):
        atomic_write_text(out / f"iter_{k}" / "output_transcriptions.txt", lines(texts))
        atomic_write_text(out / f"iter_{k}" / "wer_per_example.txt", lines("0.0" for _ in texts))


def _candidate_row(i: int, k: int, c: Candidate, prompt: Prompt, caption: str, rel: str, measured: Mapping) -> dict:
    from ..data.vocabulary import labels_to_tags

    intrinsic, situational = labels_to_tags(c.labels)
    return {
        "prompt_index": i, "candidate": k, "iteration": k + 1, "audio_path": rel,
        "text_description": caption, "text": c.spec.text,
        "prompt_labels": dict(prompt.labels), "labels": c.labels, "matched": c.matched,
        "match_fraction": round(sum(c.matched.values()) / len(c.matched), 4) if c.matched else None,
        "intrinsic_tags": intrinsic, "situational_tags": situational,
        "speaker": c.spec.voice.id, "engine": c.spec.voice.engine, "voice": c.spec.voice.name,
        "gender": c.spec.voice.gender, "duration": measured["duration"], "synth_params": dict(c.spec.params),
    }  # fmt: skip
