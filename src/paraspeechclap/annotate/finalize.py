"""The cheap stage of ``annotate``: stage shards -> labelled rows, shards, manifest and errors.

Two streaming passes over the stage shards, so memory does not grow with the corpus:

1. :func:`scan` sums the embeddings per collection and per speaker (the centring means) and collects
   each speaker's clip F0s (the speaker's reference F0, for ``f0_semitones_re_speaker``);
2. :meth:`Labeller.shard` centres each shard's embeddings on those means, scores every attribute set,
   abstains below the threshold, fills label fields, tags and captions, and gives the output shard
   and its manifest / error rows.

Means and reference F0s are over the whole input, never over one shard, so the result does not
depend on how the clips were sharded. Centring follows :func:`paraspeechclap.centering.center_embeddings`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..centering import collection_of_one, l2_rows, lone_speaker, speaker_mean
from .inputs import output_path_fields
from .labels import SetScorer, compose_captions, decide, fields_and_tags
from .stage import MEASUREMENTS


@dataclass
class Scan:
    """What pass 1 learns: sums and counts of the good clips' embeddings, per speaker too, and
    each speaker's clip F0 medians."""

    total: np.ndarray | None = None
    count: int = 0
    speaker_sum: dict[str, np.ndarray] = field(default_factory=dict)
    speaker_count: dict[str, int] = field(default_factory=dict)
    speaker_f0: dict[str, list[float]] = field(default_factory=dict)

    def add(self, emb: np.ndarray, speakers: Sequence[str | None], f0: Sequence[float | None]) -> None:
        emb = np.asarray(emb, dtype=np.float64)
        self.total = emb.sum(axis=0) if self.total is None else self.total + emb.sum(axis=0)
        self.count += len(emb)
        for vec, spk, hz in zip(emb, speakers, f0):
            if spk is None:
                continue
            self.speaker_sum[spk] = self.speaker_sum.get(spk, 0.0) + vec
            self.speaker_count[spk] = self.speaker_count.get(spk, 0) + 1
            if hz is not None:
                self.speaker_f0.setdefault(spk, []).append(float(hz))

    def reference_f0(self, speaker: str | None) -> float | None:
        """The speaker's typical F0: the median of their clips' median F0 (None: unknown)."""
        values = self.speaker_f0.get(speaker) if speaker is not None else None
        return float(np.median(values)) if values else None


def _good(table: Any) -> tuple[np.ndarray, list[int]]:
    """``(G, D)`` embeddings of the rows without an error, and their row numbers."""
    errors = table.column("error").to_pylist()
    rows = [i for i, e in enumerate(errors) if e is None]
    vectors = table.column("embedding").to_pylist()
    dim = table.schema.field("embedding").type.list_size
    emb = np.asarray([vectors[i] for i in rows], dtype=np.float32).reshape(len(rows), dim)
    return emb, rows


def scan(paths: Sequence[Path]) -> Scan:
    """Pass 1 over the stage shards (see the module docstring)."""
    import pyarrow.parquet as pq

    out = Scan()
    for path in paths:
        table = pq.read_table(path, columns=["error", "speaker", "f0_median_hz", "embedding"])
        emb, rows = _good(table)
        spk, f0 = table.column("speaker").to_pylist(), table.column("f0_median_hz").to_pylist()
        out.add(emb, [spk[i] for i in rows], [f0[i] for i in rows])
    return out


@dataclass
class Centre:
    """Subtracts the centring mean of each clip and re-normalises (``center``: a centring mode)."""

    mode: str
    scan: Scan
    reference: np.ndarray | None = None  # (D,) mean of the reference clips' embeddings
    prior: float = 0.0  # speaker means shrunk towards the collection's by this many clips

    def check(self) -> None:
        """The errors :func:`~paraspeechclap.centering.center_embeddings` would raise, before any
        output is written."""
        if self.mode == "collection" and self.reference is None and self.scan.count < 2:
            raise collection_of_one()
        if self.mode == "speaker" and self.reference is None:
            lone = sorted(s for s, n in self.scan.speaker_count.items() if n == 1)
            if lone and (self.prior == 0 or self.scan.count < 2):  # with a prior, only a clip alone in all
                raise lone_speaker(lone[0])

    def __call__(self, emb: np.ndarray, speakers: Sequence[str | None]) -> np.ndarray:
        emb = np.asarray(emb, dtype=np.float64)
        if self.mode == "none" and self.reference is None:
            return emb.astype(np.float32)
        means = np.stack([self._mean(s) for s in speakers]) if len(emb) else emb
        return l2_rows(emb - means)

    @cached_property
    def _pool(self) -> np.ndarray:
        """The reference's mean, else the collection's (check() ruled out a collection of none)."""
        return self.reference if self.reference is not None else self.scan.total / self.scan.count  # type: ignore

    def _mean(self, speaker: str | None) -> np.ndarray:
        s = self.scan
        n = s.speaker_count.get(speaker, 0) if self.mode == "speaker" and speaker is not None else 0
        mean = speaker_mean(s.speaker_sum[speaker], n, self._pool, self.prior) if n else None
        return self._pool if mean is None else mean  # a lone speaker without a prior: the reference (or collection)


def output_columns(scorers: Sequence[SetScorer]) -> list[str]:
    """The label-field columns the sets can fill, in the vocabulary's field order."""
    from ..data.vocabulary import label_fields

    written = {s.aset.field for s in scorers}
    return [f for f in label_fields() if f in written]


def output_schema(dim: int, scorers: Sequence[SetScorer]) -> Any:
    """Arrow schema of an output shard: the manifest row's columns plus ``embedding``."""
    import pyarrow as pa

    strings = pa.list_(pa.string())
    dist = [(s.aset.name, pa.struct([(c, pa.float64()) for c in s.aset.candidates])) for s in scorers]
    return pa.schema([
        ("input_index", pa.int64()), ("source", pa.string()), ("relative_audio_path", pa.string()),
        ("speaker", pa.string()), ("duration", pa.float64()), ("text_description", strings),
        ("intrinsic_tags", strings), ("situational_tags", strings),
        *[(f, pa.string()) for f in output_columns(scorers)],
        *[(k, pa.float64()) for k in MEASUREMENTS],
        ("labels", pa.struct([(s.aset.name, pa.string()) for s in scorers])),
        ("probabilities", pa.struct([(s.aset.name, pa.float64()) for s in scorers])),
        ("distributions", pa.struct(dist)),
        ("embedding", pa.list_(pa.float32(), dim)),
    ])  # fmt: skip


@dataclass
class Labeller:
    """Pass 2 settings: the sets, the centring, the model's ``logit_scale`` and the output rules."""

    scorers: list[SetScorer]
    centre: Centre
    logit_scale: float
    min_confidence: float
    captions: int
    seed: int
    out_dir: Path
    columns: list[str] = field(init=False)  # the label-field columns, derived once rather than per row

    def __post_init__(self) -> None:
        self.columns = output_columns(self.scorers)

    def shard(self, table: Any) -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
        """One stage shard -> ``(output table, manifest rows, error rows)``, rows in input order."""
        import pyarrow as pa

        emb, good = _good(table)
        data = table.drop_columns(["embedding"]).to_pylist()
        spk = [data[i]["speaker"] for i in good]
        centred = self.centre(emb, spk)
        probs = {s.aset.name: s.probabilities(centred, self.logit_scale) for s in self.scorers}
        labels = {s.aset.name: decide(probs[s.aset.name], s.aset.candidates, self.min_confidence)
                  for s in self.scorers}
        rows, errors = [], []
        for i, rec in enumerate(data):
            if rec["error"] is not None:
                errors.append({"input_index": rec["index"], "audio": rec["audio_path"], "error": rec["error"]})
        for j, i in enumerate(good):
            rows.append(self._row(data[i], {n: labels[n][j] for n in labels}, {n: p[j] for n, p in probs.items()}))
        out = [{**r, "embedding": centred[j].tolist()} for j, r in enumerate(rows)]
        schema = output_schema(centred.shape[1], self.scorers)
        return pa.Table.from_pylist(out, schema=schema), rows, errors

    def _row(self, rec: dict[str, Any], labels: dict[str, str | None], probs: dict[str, np.ndarray]
             ) -> dict[str, Any]:
        fields, intrinsic, situational = fields_and_tags(labels, self.scorers)
        seed = f"{self.seed}:{rec['index']}:{rec['audio_path']}"
        meas = {k: rec[k] for k in MEASUREMENTS}
        ref = self.centre.scan.reference_f0(rec["speaker"])
        if ref is not None and meas["f0_median_hz"] is not None:
            meas["f0_semitones_re_speaker"] = float(12.0 * np.log2(meas["f0_median_hz"] / ref))
        return {
            "input_index": rec["index"], **output_path_fields(rec["audio_path"], rec["source"], self.out_dir),
            "speaker": rec["speaker"], "duration": rec["duration_s"],
            "text_description": compose_captions(fields, intrinsic, situational, self.captions, seed),
            "intrinsic_tags": intrinsic, "situational_tags": situational,
            **{f: fields.get(f) for f in self.columns}, **meas,
            "labels": labels,
            "probabilities": {n: float(p.max()) for n, p in probs.items()},
            "distributions": {s.aset.name: dict(zip(s.aset.candidates, map(float, probs[s.aset.name])))
                              for s in self.scorers},
        }
