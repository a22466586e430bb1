"""``annotate`` end to end: plan the shards, run the costly stage where it is missing, label, write.

Output folder ``OUT``:

- ``work/plan.json`` and ``work/part-NNNNN.parquet``: the stage shards (measurements and uncentred
  embeddings, :mod:`.stage`), each written atomically; a re-run redoes only the missing ones, and
  refuses a plan made for other inputs, another model or another precision;
- ``shards/part-NNNNN.parquet``: the output rows plus embeddings (one per stage shard);
- ``manifest.jsonl``: the rows in input order (PSC manifest schema, paths resolving from ``OUT``);
- ``errors.jsonl``: the clips that could not be annotated, with their reasons;
- ``run.json``, written last: model, settings, counts, timings and the executor's statistics.

Labelling is cheap, so it is always redone from the stage shards unless ``run.json`` says the same
labelling of the same stage is already complete (then nothing is done).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path, atomic_write_json
from ..calibration import model_logit_scale
from ..errors import InputError
from .executors import StageJob, get_executor
from .finalize import Centre, Labeller, scan
from .inputs import InputItem, inputs_digest
from .labels import DEFAULT_CAPTIONS, DEFAULT_MIN_CONFIDENCE, build_scorers
from .stage import shard_path

#: format version of ``work/plan.json`` and ``run.json``
RUN_VERSION = 1
DEFAULT_SHARD_SIZE = 256


@dataclass
class Settings:
    """What an annotation run is asked to do (recorded in ``run.json``).

    Attributes:
        attributes: attribute sets, in priority order.
        min_confidence: abstain below this calibrated probability.
        calibration: path of the calibration used, or None.
        captions: captions per clip.
        seed: caption seed.
        shard_size: clips per shard.
        center / reference: centring (:mod:`paraspeechclap.centering`); ``reference`` = clip paths.
        batch_size: clips per forward pass.
        executor: ``local`` (the registry of :mod:`.executors`).
    """

    attributes: list[str]
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    calibration: str | None = None
    captions: int = DEFAULT_CAPTIONS
    seed: int = 0
    shard_size: int = DEFAULT_SHARD_SIZE
    center: str = "none"
    reference: list[str] = field(default_factory=list)
    batch_size: int = 16
    executor: str = "local"

    def labelling_key(self) -> dict[str, Any]:
        """The settings that change labels but not the stage shards."""
        return {k: v for k, v in asdict(self).items() if k not in ("batch_size", "executor", "shard_size")}


def _plan(out: Path, items: Sequence[InputItem], model: Any, settings: Settings) -> dict[str, Any]:
    plan = {"version": RUN_VERSION, "inputs": len(items), "inputs_sha256": inputs_digest(items),
            "shard_size": settings.shard_size, "model_checksum": model.checksum, "precision": model.precision}
    path = out / "work" / "plan.json"
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        diff = [k for k in plan if old.get(k) != plan[k]]
        if diff:
            raise InputError(f"{out}: its work/ was made with other {', '.join(diff)}; annotate into a new --out, "
                             f"or delete {out / 'work'} to start again")
    else:
        atomic_write_json(path, plan)
    return plan


def _shards(items: Sequence[InputItem], size: int) -> list[list[InputItem]]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def _stage_digest(paths: Sequence[Path]) -> str:
    """Identity of the finished stage: the shards' names, sizes and modification times."""
    h = hashlib.sha256()
    for p in paths:
        st = p.stat()
        h.update(f"{p.name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _already_done(out: Path, labelling: dict[str, Any], stage: str) -> dict[str, Any] | None:
    path = out / "run.json"
    if not path.is_file():
        return None
    old = json.loads(path.read_text(encoding="utf-8"))
    same = old.get("labelling") == labelling and old.get("stage_sha256") == stage
    return old if same and (out / "manifest.jsonl").is_file() else None


def annotate(model: Any, items: Sequence[InputItem], out_dir: str | Path, settings: Settings,
             calibration: Any | None = None, official: bool = False, progress: bool = True,
             info: dict[str, Any] | None = None, model_spec: dict[str, Any] | None = None,
             executor_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Annotate ``items`` into ``out_dir`` (see the module docstring); returns the ``run.json`` record.

    Args:
        model: the loaded model.
        items: the clips, in output order.
        out_dir: the output folder (created).
        settings: see :class:`Settings`.
        calibration: a :class:`~paraspeechclap.calibration.Calibration` already checked against the
            model and centring, or None (uncalibrated softmax).
        official: the model is an official checkpoint (recorded).
        progress: show the project's progress bar (clips/s, ETA).
        info: extra provenance for ``run.json`` (the input's name ...).
        model_spec: ``load_model`` keywords that load the same model in another process (executors
            other than ``local`` need it).
        executor_options: the executor's own settings (``ray``: ``address``, ``workers``).
    """
    t_start = time.perf_counter()
    out = Path(out_dir)
    if not items:
        raise InputError("nothing to annotate: the input has no clips")
    if settings.center == "speaker":
        lacking = [it for it in items if it.speaker is None]
        if lacking:
            raise InputError(f"center=speaker: {len(lacking)} clip(s) have no speaker id, e.g. {lacking[0].path}")
    _check_sets(settings.attributes, calibration)  # before any work: a typo must not cost a corpus pass
    executor = get_executor(settings.executor)
    plan = _plan(out, items, model, settings)
    shards = _shards(items, settings.shard_size)
    paths = [shard_path(out / "work", k) for k in range(len(shards))]
    pending = [k for k, p in enumerate(paths) if not p.is_file()]
    job = StageJob(model, model_spec or {}, shards, pending, paths, settings.batch_size, progress,
                   executor_options or {})
    stats = executor(job)
    stage = _stage_digest(paths)
    labelling = {**settings.labelling_key(), "calibration_sha256": _calibration_digest(calibration)}
    if settings.center == "speaker":  # the model's prior changes the centred labels: a new one must relabel
        labelling["speaker_prior"] = model.config.speaker_prior
    done = _already_done(out, labelling, stage)
    if done is not None:
        return {**done, "nothing_to_do": True}
    t0 = time.perf_counter()
    counts = _label_all(model, out, paths, settings, calibration)
    record = {"version": RUN_VERSION, "model": {"id": model.model_id, "checksum": model.checksum,
                                                "official": official},
              "precision": model.precision, "settings": asdict(settings), "labelling": labelling,
              "centring_head": "main",  # stored embeddings are centred: the centred head needs the clips
              "calibration": _calibration_info(calibration, settings.attributes), "plan": plan,
              "stage_sha256": stage, "counts": counts, "executor": {"name": settings.executor, **stats},
              "timings_s": {"stage": stats["wall_s"], "label_and_write": round(time.perf_counter() - t0, 3),
                            "total": round(time.perf_counter() - t_start, 3)},
              "info": info or {}}
    atomic_write_json(out / "run.json", record)  # last: its presence marks a complete run
    return record


def _check_sets(names: Sequence[str], calibration: Any | None) -> None:
    from ..data.attributes import get_attribute_set

    if not names:
        raise InputError("no attribute sets to annotate")
    for name in names:
        get_attribute_set(name)
        if calibration is not None:
            calibration.temperature(name)


def _calibration_digest(calibration: Any | None) -> str | None:
    if calibration is None:
        return None
    return hashlib.sha256(json.dumps(calibration.to_dict(), sort_keys=True).encode()).hexdigest()


def _calibration_info(calibration: Any | None, sets: Sequence[str]) -> dict[str, Any]:
    if calibration is None:
        return {"file": None, "temperatures": {s: 1.0 for s in sets}, "calibrated": False}
    # a record may mark a set it kept at T = 1 (too few errors to fit on): say so per set
    fitted = {s: bool(calibration.metrics.get(s, {}).get("fitted", True)) for s in sets}
    return {"file": calibration.source, "temperatures": {s: calibration.temperature(s) for s in sets},
            "calibrated": True, "fitted": fitted, "center": calibration.center}


def _reference_mean(model: Any, settings: Settings) -> np.ndarray | None:
    if not settings.reference:
        return None
    emb = model.embed_audio(list(settings.reference), batch_size=settings.batch_size)
    return emb.astype(np.float64).mean(axis=0)


def _label_all(model: Any, out: Path, paths: Sequence[Path], settings: Settings,
               calibration: Any | None) -> dict[str, Any]:
    """Pass 1 (means), then pass 2 shard by shard; the manifest and errors are streamed to
    temporary files and moved into place at the end."""
    import pyarrow.parquet as pq

    centre = Centre(settings.center, scan(paths), _reference_mean(model, settings), model.config.speaker_prior)
    centre.check()
    scorers = build_scorers(model, settings.attributes, calibration)
    labeller = Labeller(scorers, centre, model_logit_scale(model),
                        settings.min_confidence, settings.captions, settings.seed, out)
    counts: dict[str, Any] = {"inputs": 0, "annotated": 0, "errors": 0, "labels": {s.aset.name: {} for s in scorers},
                              "abstained": {s.aset.name: 0 for s in scorers}}
    with atomic_path(out / "manifest.jsonl") as man_tmp, atomic_path(out / "errors.jsonl") as err_tmp, \
            open(man_tmp, "w", encoding="utf-8") as man, open(err_tmp, "w", encoding="utf-8") as err:
        for k, path in enumerate(paths):
            table, rows, errors = labeller.shard(pq.read_table(path))
            with atomic_path(out / "shards" / path.name) as tmp:
                pq.write_table(table, tmp)
            for r in rows:
                man.write(json.dumps(r, ensure_ascii=False) + "\n")
                _count(counts, r)
            err.writelines(json.dumps(e, ensure_ascii=False) + "\n" for e in errors)
            counts["inputs"] += len(rows) + len(errors)
            counts["errors"] += len(errors)
        man.flush()
        err.flush()
    counts["annotated"] = counts["inputs"] - counts["errors"]
    return counts


def _count(counts: dict[str, Any], row: dict[str, Any]) -> None:
    for name, label in row["labels"].items():
        if label is None:
            counts["abstained"][name] += 1
        else:
            hist = counts["labels"][name]
            hist[label] = hist.get(label, 0) + 1


def print_summary(record: dict[str, Any], out: Path) -> None:
    """A few human lines about a finished run (stderr keeps stdout for ``--json``)."""
    c = record["counts"]
    if record.get("nothing_to_do"):
        print(f"{out}: already complete ({c['annotated']} clips); nothing to do", file=sys.stderr)
        return
    print(f"annotated {c['annotated']} of {c['inputs']} clips into {out}"
          + (f"; {c['errors']} in errors.jsonl" if c["errors"] else ""), file=sys.stderr)
    for name, n in c["abstained"].items():
        top = sorted(c["labels"][name].items(), key=lambda kv: -kv[1])[:3]
        print(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in top) + (f"; abstained {n}" if n else ""),
              file=sys.stderr)
