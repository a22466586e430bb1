"""Speaker-disjoint train/dev/test splits, and the committed split of the shared real data.

- :func:`speaker_disjoint_split` is a pure function: rows in, one split name per row out,
  deterministic for a seed; all rows of a speaker land in the same split.
- ``splits/shared_real.json`` (package data) assigns every row of the shared manifests
  ``real/manifest.jsonl`` and ``real2/manifest.jsonl`` to a split, keyed by
  ``"<source>/<relative_audio_path>"``; :func:`load_shared_split` / :func:`split_of` read it and
  :func:`load_shared_manifest` gives the rows of one split. ``scripts/make_shared_split.py``
  regenerates it.
"""

from __future__ import annotations

import functools
import json
import os
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import InputError
from .manifest import Manifest, load_manifest, row_key
from .vocabulary import map_label

SPLITS: tuple[str, ...] = ("train", "dev", "test")
SHARED_SPLIT_RESOURCE = "splits/shared_real.json"
#: the batches of shared real data that in-corpus scores default to: the ones every shipped model since
#: v15 trained on, so test numbers compare across versions (v16 also trains on ``real3``; ``batches="all"``
#: adds it).
DEFAULT_BATCHES = ("real", "real2")
#: Environment variable naming the folder that holds ``real/`` and ``real2/``.
SHARED_DATA_ENV = "PARASPEECHCLAP_SHARED_DATA"


def speaker_group(row: Mapping[str, Any]) -> str:
    """Default grouping key: the ``speaker`` field; rows without one group by source (conservative)."""
    speaker = row.get("speaker")
    return str(speaker) if speaker not in (None, "") else f"{row['source']}/<unknown speaker>"


def default_strata(row: Mapping[str, Any]) -> list[str]:
    """Balance keys of a row: its emotion (mapped), its source, and the pair of both."""
    label = map_label(row.get("emotion"), "emotion") or "<none>"
    return [f"label={label}", f"source={row['source']}", f"pair={row['source']}:{label}"]


class _Balancer:
    """Split sizes and stratum counts, with the cost change of adding/removing a group.

    Cost = size_weight * sum_s (n_s - f_s N)^2 / N + sum_s sum_k (c_sk - f_s T_k)^2 / T_k.
    """

    def __init__(self, frac: list[float], n: int, totals: dict[str, int], size_weight: float) -> None:
        self.frac, self.n, self.totals, self.size_weight = frac, n, totals, size_weight
        self.sizes = [0] * len(frac)
        self.counts: list[dict[str, int]] = [dict.fromkeys(totals, 0) for _ in frac]

    def delta(self, s: int, size: int, g_counts: Mapping[str, int], sign: int = 1) -> float:
        """Cost change of adding (sign=+1) or removing (sign=-1) a group to/from split ``s``."""
        target = self.frac[s] * self.n
        d = self.size_weight * ((self.sizes[s] + sign * size - target) ** 2 - (self.sizes[s] - target) ** 2) / self.n
        for k, c in g_counts.items():
            t = self.frac[s] * self.totals[k]
            d += ((self.counts[s][k] + sign * c - t) ** 2 - (self.counts[s][k] - t) ** 2) / self.totals[k]
        return d

    def apply(self, s: int, size: int, g_counts: Mapping[str, int], sign: int = 1) -> None:
        self.sizes[s] += sign * size
        for k, c in g_counts.items():
            self.counts[s][k] += sign * c


def _improve(
    bal: _Balancer,
    groups: Mapping[str, list[int]],
    g_counts: Mapping[str, dict[str, int]],
    where: dict[str, int],
    order: Sequence[str],
    n_splits: int,
    max_passes: int,
) -> None:
    """Local search, in place: move single groups while a move lowers the cost (fixed groups stay)."""
    for _ in range(max_passes):
        moved = False
        for g in order:
            cur, size = where[g], len(groups[g])
            out = bal.delta(cur, size, g_counts[g], -1)
            bal.apply(cur, size, g_counts[g], -1)
            # Ties keep the group where it is (the 1e-9 bias), so the search terminates.
            best = min(range(n_splits), key=lambda s: (bal.delta(s, size, g_counts[g]) + (0 if s == cur else 1e-9), s))
            new = best if bal.delta(best, size, g_counts[g]) + out < -1e-9 else cur
            bal.apply(new, size, g_counts[g])
            moved |= new != cur
            where[g] = new
        if not moved:
            return


def speaker_disjoint_split(
    rows: Sequence[Mapping[str, Any]],
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    *,
    group_of: Callable[[Mapping[str, Any]], str] = speaker_group,
    strata_of: Callable[[Mapping[str, Any]], Iterable[str]] = default_strata,
    fixed: Mapping[str, str] | None = None,
    names: Sequence[str] = SPLITS,
    size_weight: float = 3.0,
    max_passes: int = 50,
) -> list[str]:
    """Assign every row to a split so that no speaker (group) is in two splits.

    Balancing minimises the squared deviation from the target fractions of the split sizes and of
    every stratum (emotion, source, source x emotion by default; each stratum's deviations scaled
    by its total so small strata count). Speakers are first placed greedily, largest first (ties
    in a seeded random order), then single-speaker moves are made while they lower the cost.

    Args:
        rows: manifest rows.
        fractions: target share of each split (normalised), e.g. 70/15/15.
        seed: orders speakers of equal size; the result is a deterministic function of the inputs.
        group_of: row -> speaker/group key.
        strata_of: row -> stratum keys to balance.
        fixed: group -> split name, assigned up front and never moved (e.g. hold a corpus out).
        names: split names, one per fraction.
        size_weight: weight of the split-size term against the strata terms.
        max_passes: bound on the improvement passes.

    Returns:
        One split name per row, in row order.

    Raises:
        InputError: bad fractions, or a fixed split name not in ``names``.
    """
    if len(fractions) != len(names) or min(fractions) < 0 or sum(fractions) <= 0:
        raise InputError(f"split fractions {list(fractions)} do not match split names {list(names)}")
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(group_of(r), []).append(i)
    g_counts: dict[str, dict[str, int]] = {g: {} for g in groups}
    totals: dict[str, int] = {}
    for g, idx in groups.items():
        for i in idx:
            for k in strata_of(rows[i]):
                g_counts[g][k] = g_counts[g].get(k, 0) + 1
                totals[k] = totals.get(k, 0) + 1
    bal = _Balancer([f / sum(fractions) for f in fractions], len(rows), totals, size_weight)
    where: dict[str, int] = {}
    for g, name in (fixed or {}).items():
        if name not in names:
            raise InputError(f"fixed split {name!r} for {g!r} is not one of {list(names)}")
        if g in groups:
            where[g] = list(names).index(name)
            bal.apply(where[g], len(groups[g]), g_counts[g])
    order = [g for g in groups if g not in where]
    random.Random(seed).shuffle(order)
    order.sort(key=lambda g: -len(groups[g]))  # stable: the shuffle breaks ties
    for g in order:
        where[g] = min(range(len(names)), key=lambda s: (bal.delta(s, len(groups[g]), g_counts[g]), s))
        bal.apply(where[g], len(groups[g]), g_counts[g])
    _improve(bal, groups, g_counts, where, order, len(names), max_passes)
    return [names[where[group_of(r)]] for r in rows]


# ---------------------------------------------------------------------------------------------
# Split files


@dataclass
class SplitFile:
    """A committed split: row key -> (manifest name, split).

    Attributes:
        rows: ``{"<source>/<relative_audio_path>": (manifest_name, split)}``.
        manifests: manifest name -> path of the manifest relative to the data root.
        meta: everything else stored in the file (seed, fractions, description ...).
    """

    rows: dict[str, tuple[str, str]]
    manifests: dict[str, str]
    meta: dict[str, Any] = field(default_factory=dict)

    def split_of(self, row_or_key: Mapping[str, Any] | str) -> str | None:
        """Split of a row (or of a row key); None when the row is not in the file."""
        key = row_or_key if isinstance(row_or_key, str) else row_key(row_or_key)
        hit = self.rows.get(key)
        return hit[1] if hit else None

    def keys(self, split: str | None = None, manifest: str | None = None) -> list[str]:
        """Row keys of a split (and/or manifest), in file order."""
        return [k for k, (m, s) in self.rows.items() if (split is None or s == split) and (manifest in (None, m))]

    def counts(self) -> dict[str, dict[str, int]]:
        """``{manifest: {split: rows}}``."""
        out: dict[str, dict[str, int]] = {}
        for m, s in self.rows.values():
            out.setdefault(m, dict.fromkeys(SPLITS, 0))
            out[m][s] = out[m].get(s, 0) + 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {**self.meta, "manifests": self.manifests, "rows": {k: list(v) for k, v in self.rows.items()}}

    def dumps(self) -> str:
        """JSON text with one row per line (readable diffs when the split is regenerated)."""
        head = json.dumps({**self.meta, "manifests": self.manifests}, indent=2, ensure_ascii=False)
        rows = ",\n".join(
            f"    {json.dumps(k, ensure_ascii=False)}: {json.dumps(list(v))}" for k, v in self.rows.items()
        )
        return head[:-2] + ',\n  "rows": {\n' + rows + "\n  }\n}\n"

    @staticmethod
    def from_json(obj: Mapping[str, Any], name: str = "split file") -> SplitFile:
        try:
            rows = {str(k): (str(v[0]), str(v[1])) for k, v in obj["rows"].items()}
            manifests = dict(obj["manifests"])
        except (KeyError, TypeError, IndexError, AttributeError) as exc:
            raise InputError(f"{name}: not a split file ({exc})") from None
        bad = {s for _, s in rows.values()} - set(SPLITS)
        if bad:
            raise InputError(f"{name}: unknown split names {sorted(bad)}")
        meta = {k: v for k, v in obj.items() if k not in ("rows", "manifests")}
        return SplitFile(rows, manifests, meta)


def read_split_file(path: str | os.PathLike) -> SplitFile:
    """Read a split file written by :meth:`SplitFile.to_json`."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: cannot read split file ({exc})") from None
    return SplitFile.from_json(obj, str(path))


@functools.lru_cache(maxsize=1)
def _packaged_split() -> SplitFile:
    text = resources.files(__package__).joinpath(SHARED_SPLIT_RESOURCE).read_text(encoding="utf-8")
    return SplitFile.from_json(json.loads(text), SHARED_SPLIT_RESOURCE)


def load_shared_split(path: str | os.PathLike | None = None) -> SplitFile:
    """The split of the shared real data (the packaged ``splits/shared_real.json`` by default)."""
    return _packaged_split() if path is None else read_split_file(path)


def split_of(row: Mapping[str, Any] | str) -> str | None:
    """Split (``train``/``dev``/``test``) of a shared-data row or row key; None if not in the split file."""
    return load_shared_split().split_of(row)


def find_shared_data(data_root: str | os.PathLike | None = None) -> Path:
    """Locate the folder holding the shared manifests (``real/``, ``real2/``).

    Order: ``data_root``, the ``PARASPEECHCLAP_SHARED_DATA`` environment variable, then
    ``<checkout>/../shared/data`` for a source checkout.

    Raises:
        InputError: none of them exists.
    """
    candidates = [
        data_root,
        os.environ.get(SHARED_DATA_ENV),
        Path(__file__).resolve().parents[3].parent / "shared" / "data",
    ]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    raise InputError(f"shared data folder not found; pass data_root= or set {SHARED_DATA_ENV}")


def load_shared_manifest(
    split: str | None = None,
    data_root: str | os.PathLike | None = None,
    split_file: SplitFile | None = None,
    batches: Sequence[str] | str = DEFAULT_BATCHES,
) -> Manifest:
    """Rows of the shared real manifests, optionally only one split, each with its own audio root.

    Args:
        split: ``train``/``dev``/``test``, or None for all rows.
        data_root: folder with ``real/``, ``real2/``, ... (see :func:`find_shared_data`).
        split_file: defaults to the packaged shared split.
        batches: which manifests of the split file (``real``, ``real2``, ``real3``; ``"all"``): by
            default :data:`DEFAULT_BATCHES`, the corpora the default model trained on, so that its
            "unseen speakers of the training corpora" figures keep meaning that.

    Raises:
        InputError: unknown split or batch, missing data, or a manifest row absent from the split file.
    """
    if split is not None and split not in SPLITS:
        raise InputError(f"unknown split {split!r}; use one of {list(SPLITS)}")
    sf = split_file or load_shared_split()
    names = list(sf.manifests) if batches == "all" else list(batches)
    unknown = [b for b in names if b not in sf.manifests]
    if unknown:
        raise InputError(f"unknown shared data batch {unknown[0]!r}; the split file has {', '.join(sf.manifests)}")
    root = find_shared_data(data_root)
    parts = []
    for rel in (sf.manifests[b] for b in names):
        m = load_manifest(root / rel)
        missing = [m.key(i) for i in range(len(m)) if sf.split_of(m[i]) is None]
        if missing:
            raise InputError(f"{m.name}: {len(missing)} rows are not in the split file (first: {missing[0]})")
        parts.append(m if split is None else m.filter(lambda r: sf.split_of(r) == split))
    return Manifest.concat(parts, name=f"shared:{split or 'all'}")
