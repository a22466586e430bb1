"""Reading best-of-N inputs: the official layout, a plain layout, and WER tables.

Official layout (``best_of_n.py`` of the official repository)::

    D/iter_{k}/audios/{i}.wav            candidate k (1..N) of prompt i (0-based)
    D/iter_1/input_descriptions.txt      one style prompt per line (blank lines dropped)
    D/iter_1/input_{genders,negative_descriptions,texts}.txt   optional, copied to the output
    D/iter_{k}/wer_per_example.txt       optional here (required by the official script): one WER per prompt
    D/iter_{k}/output_transcriptions.txt optional: one transcription per prompt

Plain layout::

    prompts.txt                          one style prompt per line (blank lines dropped)
    DIR/{i}/*.wav                        the candidates of prompt i, sorted by file name

Problems are collected, not raised one at a time, so that a user sees every bad file in one run.
A *fatal* problem (no prompts, more audio files than prompts, a text file of the wrong length)
makes the input unusable; a *candidate* problem (a missing candidate) can be skipped (``--skip-bad``).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

OFFICIAL_PROMPTS = "input_descriptions.txt"
#: per-prompt text files of iter_1 that are copied to the output when present (official list)
PROMPT_TEXT_FILES = ("input_descriptions.txt", "input_genders.txt", "input_negative_descriptions.txt",
                     "input_texts.txt")  # fmt: skip
WER_FILE = "wer_per_example.txt"
TRANSCRIPTION_FILE = "output_transcriptions.txt"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
_ITER = re.compile(r"iter_(\d+)")


@dataclass
class Problem:
    """One bad input, as one line that names the file.

    Attributes:
        message: the line.
        fatal: True when the input cannot be used at all; False for a bad candidate that
            ``--skip-bad`` may leave out.
        prompt_idx: the prompt concerned (0-based), when there is one.
        candidate: the candidate concerned (0-based), when there is one.
    """

    message: str
    fatal: bool = True
    prompt_idx: int | None = None
    candidate: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"message": self.message, "fatal": self.fatal, "prompt_idx": self.prompt_idx,
                "candidate": self.candidate}  # fmt: skip


@dataclass
class RerankSet:
    """A best-of-N input: prompts, their candidates and optional per-candidate text lines.

    Attributes:
        layout: ``"official"`` or ``"plain"``.
        root: the input folder (official) or the candidates folder (plain).
        prompts: ``P`` style prompts.
        candidates: per prompt, its candidate files (official: ``N`` per prompt, iteration order;
            a file may be missing, see ``problems``).
        lines: per-candidate lines of the official per-iteration files, by file name:
            ``lines[name][i][k]`` is line ``i`` of ``iter_{k+1}/name``.
        text_files: per-prompt files to copy to the output, by output name.
        problems: bad inputs found.
        warnings: things worth a line that do not stop the run.
    """

    layout: str
    root: Path
    prompts: list[str]
    candidates: list[list[Path]]
    lines: dict[str, list[list[str]]] = field(default_factory=dict)
    text_files: dict[str, Path] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def label(self, prompt_idx: int, candidate: int) -> str:
        """The candidate's file, relative to ``root`` when it lies below it."""
        path = self.candidates[prompt_idx][candidate]
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def wer_from_files(self) -> list[np.ndarray] | None:
        """Per prompt ``(N,)`` WER parsed from ``wer_per_example.txt`` (None when not available;
        NaN for a blank line).

        Raises:
            InputError: a line that is not a number (named by file and line).
        """
        rows = self.lines.get(WER_FILE)
        if rows is None:
            return None
        out = []
        for i, row in enumerate(rows):
            vals = np.full(len(row), np.nan)
            for k, text in enumerate(row):
                if not text.strip():
                    continue  # no WER for this candidate (NaN)
                try:
                    vals[k] = float(text.strip())
                except ValueError:
                    raise InputError(f"{self.root / f'iter_{k + 1}' / WER_FILE}:{i + 1}: not a number: {text!r}") from None
            out.append(vals)
        return out


def read_prompts(path: Path) -> list[str]:
    """Non-blank lines of a prompt file, stripped (as the official script reads them).

    Raises:
        InputError: missing or unreadable file, or no prompt in it.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: prompt file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read prompts ({exc})") from None
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise InputError(f"{path}: no prompts (the file is empty)")
    return prompts


def _read_lines(path: Path, n: int) -> list[str] | None:
    """The first ``n`` lines of a per-prompt file; None when it has another number of lines
    (trailing blank lines are tolerated)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    while len(lines) > n and not lines[-1].strip():
        lines.pop()
    return lines if len(lines) == n else None


def _iterations(root: Path) -> tuple[int, list[Problem]]:
    """Number of iterations ``N`` (the highest ``iter_k``) and a problem per missing ``iter_k``."""
    if not root.is_dir():
        raise InputError(f"{root}: input folder not found")
    found = {int(m.group(1)) for p in root.iterdir() if p.is_dir() and (m := _ITER.fullmatch(p.name))}
    if not found:
        raise InputError(f"{root}: no iter_1 .. iter_N folders (expected the official best-of-N layout)")
    n = max(found)
    problems = [Problem(f"{root / f'iter_{k}'}: missing folder (found iter_1 .. iter_{n})") for k in range(1, n + 1)
                if k not in found]  # fmt: skip
    return n, problems


def _check_audios(audios: Path, n_prompts: int, k: int) -> tuple[list[Path], list[Problem]]:
    """Candidate ``k`` of every prompt in ``audios``; a problem per missing file, one for extras."""
    if not audios.is_dir():
        return [audios / f"{i}.wav" for i in range(n_prompts)], [Problem(f"{audios}: missing folder")]
    paths = [audios / f"{i}.wav" for i in range(n_prompts)]
    problems = [Problem(f"{p}: missing candidate {k + 1} of prompt {i}", False, i, k)
                for i, p in enumerate(paths) if not p.is_file()]  # fmt: skip
    expected = {p.name for p in paths}
    extra = sorted((p.name for p in audios.glob("*.wav") if p.name not in expected), key=natural_key)
    if extra:
        shown = ", ".join(extra[:5]) + (", ..." if len(extra) > 5 else "")
        problems.append(Problem(f"{audios}: {len(extra)} .wav file(s) beyond the {n_prompts} prompts of "
                                f"iter_1/{OFFICIAL_PROMPTS} ({shown}): prompt and audio counts do not match"))
    return paths, problems


def load_official(root: str | Path) -> RerankSet:
    """Read (and check) the official layout below ``root``; problems are recorded, not raised.

    Raises:
        InputError: no input folder, no ``iter_k`` folders, or no prompt file: nothing to check.
    """
    root = Path(root)
    n_iter, problems = _iterations(root)
    prompts = read_prompts(root / "iter_1" / OFFICIAL_PROMPTS)
    columns = []
    for k in range(n_iter):
        paths, probs = _check_audios(root / f"iter_{k + 1}" / "audios", len(prompts), k)
        columns.append(paths)
        problems += probs
    rset = RerankSet("official", root, prompts, [list(row) for row in zip(*columns)], problems=problems)
    for name in (WER_FILE, TRANSCRIPTION_FILE):
        _load_iteration_lines(rset, name, n_iter)
    rset.text_files = {n: root / "iter_1" / n for n in PROMPT_TEXT_FILES if (root / "iter_1" / n).is_file()}
    for name, path in rset.text_files.items():
        if name != OFFICIAL_PROMPTS and _read_lines(path, len(prompts)) is None:
            rset.warnings.append(f"{path}: line count differs from the {len(prompts)} prompts; copied as it is")
    return rset


def _load_iteration_lines(rset: RerankSet, name: str, n_iter: int) -> None:
    """Read ``iter_k/name`` for every k into ``rset.lines[name]`` when present in all iterations."""
    files = [rset.root / f"iter_{k + 1}" / name for k in range(n_iter)]
    present = [f for f in files if f.is_file()]
    if not present:
        return
    if len(present) < len(files):
        missing = ", ".join(str(f.parent.name) for f in files if not f.is_file())
        rset.warnings.append(f"{name} is missing in {missing}; not used")
        return
    columns = []
    for f in files:
        lines = _read_lines(f, len(rset.prompts))
        if lines is None:
            count = len(f.read_text(encoding="utf-8").splitlines())
            rset.problems.append(Problem(f"{f}: {count} lines for {len(rset.prompts)} prompts"))
            return
        columns.append(lines)
    rset.lines[name] = [list(row) for row in zip(*columns)]


def natural_key(name: str) -> list:
    """Sort key comparing digit runs as numbers: ``2.wav`` before ``10.wav``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def load_plain(prompts_file: str | Path, candidates_dir: str | Path) -> RerankSet:
    """Read (and check) the plain layout: prompt ``i`` has the audio files of ``candidates_dir/i/``.

    Raises:
        InputError: no prompt file or no candidates folder.
    """
    root = Path(candidates_dir)
    prompts = read_prompts(Path(prompts_file))
    if not root.is_dir():
        raise InputError(f"{root}: candidates folder not found")
    rset = RerankSet("plain", root, prompts, [], text_files={})
    for i in range(len(prompts)):
        d = root / str(i)
        files = sorted((p for p in d.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES),
                       key=lambda p: natural_key(p.name)) if d.is_dir() else []  # fmt: skip
        if not files:
            what = "missing folder" if not d.is_dir() else "no audio files"
            rset.problems.append(Problem(f"{d}: {what}: no candidates for prompt {i}", False, i, None))
        rset.candidates.append(files)
    extra = sorted((p.name for p in root.iterdir() if p.is_dir() and p.name.isdigit() and int(p.name) >= len(prompts)),
                   key=int)  # fmt: skip
    if extra:
        rset.problems.append(Problem(f"{root}: candidate folder(s) {', '.join(extra[:5])} beyond the {len(prompts)} "
                                     f"prompts of {prompts_file}: prompt and audio counts do not match"))
    return rset


def read_wer_table(path: str | Path, rset: RerankSet, column: str = "wer") -> list[np.ndarray]:
    """Per-candidate WER from a user table: CSV, TSV or JSONL with ``prompt_idx``, ``candidate``
    and ``column``.

    ``prompt_idx`` is 0-based; ``candidate`` is the 1-based candidate number (the iteration of the
    official layout) or the candidate's file name. Candidates without a row get NaN.

    Raises:
        InputError: unreadable file, missing column, unknown prompt or candidate, a value that is
            not a number, or a candidate given twice (each named by file and line).
    """
    path = Path(path)
    out = [np.full(len(c), np.nan) for c in rset.candidates]
    for line_no, row in _table_rows(path):
        where = f"{path}:{line_no}"
        for key in ("prompt_idx", "candidate", column):
            if row.get(key) in (None, ""):
                raise InputError(f"{where}: no {key!r} value")
        try:
            p = int(row["prompt_idx"])
            value = float(row[column])
        except (TypeError, ValueError):
            raise InputError(f"{where}: prompt_idx must be an integer and {column!r} a number") from None
        if not 0 <= p < len(out):
            raise InputError(f"{where}: prompt_idx {p} out of range (0..{len(out) - 1})")
        k = _candidate_index(str(row["candidate"]).strip(), rset.candidates[p])
        if k is None:
            raise InputError(f"{where}: prompt {p} has no candidate {row['candidate']!r}")
        if not np.isnan(out[p][k]):
            raise InputError(f"{where}: candidate {row['candidate']!r} of prompt {p} given twice")
        out[p][k] = value
    return out


def _candidate_index(ref: str, files: list[Path]) -> int | None:
    if ref.isdigit():
        k = int(ref) - 1
        return k if 0 <= k < len(files) else None
    hits = [k for k, f in enumerate(files) if ref in (f.name, str(f))]
    return hits[0] if len(hits) == 1 else None


def _table_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot read WER table ({exc.strerror or exc})") from None
    if path.suffix.lower() in (".jsonl", ".json"):
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((n, dict(json.loads(line))))
                except (ValueError, TypeError):
                    raise InputError(f"{path}:{n}: not a JSON object") from None
        return rows
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.DictReader(text.splitlines(), delimiter=delimiter)
    return [(n, row) for n, row in enumerate(reader, 2)]
