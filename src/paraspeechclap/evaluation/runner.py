"""Evaluation glue: manifest -> embeddings -> metrics -> report files.

Follows the official protocol (reference: ``scripts/evaluate_retrieval.py`` and
``scripts/evaluate_classification.py``): full-length audio, normalised embeddings, cosine
similarity, no randomness. Clips are embedded in descending duration order like the official code
(only so that batches hold similar lengths); every output is in manifest order.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from . import report
from .classification import classification_metrics, embed_class_prompts, predict_labels
from .retrieval import (
    DEFAULT_KS,
    audio_to_text_ranks,
    dedupe_captions,
    rank_metrics,
    recall_curve,
    text_to_audio_ranks,
)

if TYPE_CHECKING:
    from ..data.attributes import AttributeSet
    from ..data.manifest import Manifest


_CURVE_MAX_K = 100  # recall@k curve length (capped by the number of candidates)


def _duration(manifest: Manifest, i: int) -> float:
    """Row duration for sorting: the ``duration`` field, else the file header, else 0."""
    d = manifest[i].get("duration")
    if d is not None:
        return float(d)
    try:
        import soundfile as sf

        return float(sf.info(str(manifest.audio_path(i))).duration)
    except Exception:  # noqa: BLE001 - unreadable files fail later with a proper AudioError
        return 0.0


def embed_rows(model: Any, manifest: Manifest, indices: Sequence[int], batch_size: int = 8,
               progress: bool = False, centering: Mapping[str, Any] | None = None) -> np.ndarray:
    """Embed the audio of ``manifest[indices]``, longest first, returned in ``indices`` order.

    Args:
        centering: ``center`` (``"none"``, ``"collection"``, ``"speaker"``), ``speaker_field`` and
            ``reference`` clips (see :mod:`paraspeechclap.centering`); the mean is over these rows.

    Returns:
        ``(len(indices), D)`` float32 L2-normalised embeddings.

    Raises:
        AudioError: a clip is missing or unreadable (the message names the file).
        InputError: a row has no audio root; a centring that cannot be done.
    """
    paths = [str(manifest.audio_path(i)) for i in indices]
    durations = [_duration(manifest, i) for i in indices]
    order = sorted(range(len(paths)), key=lambda k: (-durations[k], k))  # stable: ties keep manifest order
    c = dict(centering or {})
    kwargs: dict[str, Any] = {}
    if c.get("center", "none") != "none" or c.get("reference"):
        kwargs = {"center": c.get("center", "none"), "reference": c.get("reference")}
        if kwargs["center"] == "speaker":
            from ..centering import manifest_speakers

            kwargs["speakers"] = manifest_speakers(manifest, c.get("speaker_field", "speaker"),
                                                   [indices[k] for k in order])
    emb = model.embed_audio([paths[k] for k in order], batch_size=batch_size, progress=progress, **kwargs)
    out = np.empty_like(emb)
    out[order] = emb
    return out


def centering_info(centering: Mapping[str, Any] | None, rows: int, model: Any = None) -> dict[str, Any]:
    """The centring of a run as its report records it (``head``: :func:`paraspeechclap.centering.head_for`)."""
    from ..centering import head_for

    c = dict(centering or {})
    mode, ref = c.get("center", "none"), list(c.get("reference") or [])
    prior = float(model.config.speaker_prior) if mode == "speaker" and model is not None else None
    if mode == "speaker" and prior:
        over = (f"each speaker's rows, shrunk towards the mean of {'the reference clips' if ref else 'all rows'} "
                f"by {prior:g} clips")
    elif mode == "speaker":
        over = "each speaker's rows" + (" (a speaker with one row: the reference clips)" if ref else "")
    elif ref:
        over = f"the {len(ref)} reference clips"
    else:
        over = None if mode == "none" else f"all {rows} rows of the manifest"
    return {"mode": mode, "speaker_field": c.get("speaker_field", "speaker") if mode == "speaker" else None,
            "reference": [str(r) for r in ref], "reference_clips": len(ref), "mean_over": over,
            "labels_read": False, "head": head_for(mode, model), "speaker_prior": prior}


def model_info(model: Any, precision_source: str | None = None) -> dict[str, Any]:
    """Identity of the model for reports, with the precision it ran in and why.

    Args:
        precision_source: how the precision was chosen (the CLI says e.g. "official checkpoint
            default"); None records it as chosen by the caller who loaded the model.
    """
    return {"id": getattr(model, "model_id", "unknown"), "checksum": getattr(model, "checksum", ""),
            "precision": getattr(model, "precision", "fp32"),
            "precision_source": precision_source or "as loaded by the caller",
            "audio_offset": getattr(model, "audio_offset", None) is not None,  # a stored calibration (offset.py)
            "centred_head_checksum": getattr(model, "centred_head_checksum", "") or None}  # centred_head.py


def _provenance() -> dict[str, Any]:
    from .. import __version__

    return {"paraspeechclap": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _data_info(manifest: Manifest, split: str | None) -> dict[str, Any]:
    roots = sorted({str(r) for r in manifest.roots if r is not None})
    return {"manifest": manifest.name, "split": split, "audio_root": roots[0] if len(roots) == 1 else roots,
            "rows": len(manifest)}


def run_retrieval(
    model: Any,
    manifest: Manifest,
    out_dir: str | os.PathLike,
    *,
    split: str | None = None,
    batch_size: int = 8,
    tie_rule: str = "index",
    ks: Sequence[int] = DEFAULT_KS,
    top_n: int = 10,
    progress: bool = False,
    precision_source: str | None = None,
    centering: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Audio-to-text retrieval (official) plus text-to-audio, written as a report into ``out_dir``.

    Args:
        model: has ``embed_audio``, ``embed_text``, ``model_id``, ``checksum``.
        manifest: rows with ``text_description`` (a list counts as its first caption).
        out_dir: report directory (created).
        split: dataset split name, recorded in the report.
        batch_size: clips per batch.
        tie_rule: see :data:`paraspeechclap.evaluation.retrieval.TIE_RULES`.
        ks: recall cut-offs.
        top_n: captions listed per clip in ``predictions.jsonl``.
        progress: show a progress bar.
        precision_source: why the model runs in its precision, recorded beside it (see :func:`model_info`).
        centering: how to centre the audio embeddings (see :func:`embed_rows`; default none).

    Returns:
        The ``metrics.json`` content.
    """
    from ..data.manifest import pick_caption

    if len(manifest) == 0:
        raise InputError(f"{manifest.name}: no rows to evaluate")
    captions = [pick_caption(row) for row in manifest]
    unique, gt = dedupe_captions(captions)
    audio = embed_rows(model, manifest, range(len(manifest)), batch_size, progress, centering)
    sim = audio @ model.embed_text(unique).T  # (N, U)
    metrics: dict[str, Any] = {"task": "retrieval", "model": model_info(model, precision_source),
                               "data": {**_data_info(manifest, split), "clips": len(manifest),
                                        "unique_captions": len(unique)},
                               "centering": centering_info(centering, len(manifest), model)}
    metrics["protocol"] = {
        "official_direction": "audio_to_text", "caption_dedup": "exact string, first-seen order",
        "caption_choice": "text_description (first entry of a list)", "tie_rule": tie_rule, "ks": list(ks),
        "median": "lower", "audio": "full length, embedded longest first", "similarity": "cosine",
    }
    a2t, t2a = audio_to_text_ranks(sim, gt, tie_rule), text_to_audio_ranks(sim, gt, tie_rule)
    metrics["audio_to_text"], metrics["text_to_audio"] = rank_metrics(a2t, ks), rank_metrics(t2a, ks)
    curves = {"audio_to_text": recall_curve(a2t, min(len(unique), _CURVE_MAX_K)).tolist(),
              "text_to_audio": recall_curve(t2a, min(len(manifest), _CURVE_MAX_K)).tolist()}
    metrics["recall_curve"] = curves
    metrics["software"] = _provenance()
    preds = _retrieval_predictions(manifest, captions, unique, sim, a2t, top_n)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report.plot_recall_curves({k.replace("_", " "): v for k, v in curves.items()}, out / report.FILES["recall_curve"])
    report.write_report(out, metrics, preds, report.retrieval_markdown(metrics))  # metrics.json last
    return metrics


def _retrieval_predictions(manifest: Manifest, captions: Sequence[str], unique: Sequence[str],
                           sim: np.ndarray, ranks: np.ndarray, top_n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(len(manifest)):
        top = np.argsort(-sim[i], kind="stable")[:top_n]
        rows.append({"index": i, "path": str(manifest.audio_path(i)), "key": manifest.key(i),
                     "caption": captions[i], "rank": int(ranks[i]),
                     "top": [{"caption": unique[j], "score": round(float(sim[i, j]), 6)} for j in top]})
    return rows


def gold_labels(aset: AttributeSet, manifest: Manifest) -> tuple[list[str | None], list[str]]:
    """Gold label of every row, and its status.

    Returns:
        ``(gold, status)``: ``gold[i]`` is the row's label among the candidates, or its raw value
        when that is not a candidate (``status`` ``"excluded"``), or None when the row has no
        label at all (``"no_label"``); ``status`` is ``"evaluated"`` otherwise.
    """
    from ..data.vocabulary import label_fields, map_label

    mapped_field = aset.field in label_fields()
    gold: list[str | None] = []
    status: list[str] = []
    for row in manifest:
        label = aset.gold(row)
        if label is not None:
            gold.append(label)
            status.append("evaluated")
            continue
        raw = row.get(aset.field)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            gold.append(None)
            status.append("no_label")
            continue
        shown = (map_label(raw, aset.field) if mapped_field else None) or str(raw).strip().lower()
        gold.append(shown)
        status.append("excluded")
    return gold, status


#: what :func:`run_classification` does with rows whose gold label is no candidate
UNMATCHED_POLICIES = ("exclude", "error")


def unmatched_summary(aset: AttributeSet, manifest: Manifest, gold: Sequence[str | None],
                      status: Sequence[str], limit: int = 10) -> str | None:
    """One line naming the gold labels that match no candidate, most frequent first, or None if none.

    Example: ``"12 clips have gold 'emotion' labels that match no candidate: awed (8, as
    'surprised'), frustrated (4, not in the emotion vocabulary)"``: "as" gives the manifest's
    spellings of a mapped label; a label its field's vocabulary lacks can never be a candidate,
    only be excluded.
    """
    from ..data.vocabulary import label_fields, map_label

    counts: Counter[str] = Counter()
    spellings: dict[str, set[str]] = {}
    for i, (g, s) in enumerate(zip(gold, status)):
        if s == "excluded":
            counts[str(g)] += 1
            raw = str(manifest[i].get(aset.field)).strip()
            if raw.lower() != g:
                spellings.setdefault(str(g), set()).add(raw)
    if not counts:
        return None
    parts = []
    for label, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]:
        note = ""
        if aset.field in label_fields() and map_label(label, aset.field) is None:
            note = f", not in the {aset.field} vocabulary"
        elif label in spellings:
            note = ", as " + ", ".join(repr(x) for x in sorted(spellings[label])[:3])
        parts.append(f"{label} ({n}{note})")
    more = f", ... ({len(counts) - limit} more labels)" if len(counts) > limit else ""
    total = sum(counts.values())
    return (f"{total} clip{'s' if total != 1 else ''} ha{'ve' if total != 1 else 's'} gold {aset.field!r} "
            f"labels that match no candidate: {', '.join(parts)}{more}")


def check_gold(
    aset: AttributeSet, manifest: Manifest, on_unmatched: str = "exclude",
    hint: str = "add them to the candidates, or pass on_unmatched='exclude'",
) -> tuple[list[str | None], list[str]]:
    """:func:`gold_labels`, after checking that they allow an evaluation.

    Raises:
        InputError: no row has a gold label among the candidates; or, with ``on_unmatched="error"``,
            some rows have a gold label that is no candidate (the :func:`unmatched_summary` line,
            then ``hint``). Rows without a label never count.
    """
    if on_unmatched not in UNMATCHED_POLICIES:
        raise InputError(f"on_unmatched must be one of {', '.join(UNMATCHED_POLICIES)}, got {on_unmatched!r}")
    gold, status = gold_labels(aset, manifest)
    if "evaluated" not in status:
        raise InputError(f"{manifest.name}: no row has a gold label among the candidates of "
                         f"{aset.name!r} (field {aset.field!r}: {', '.join(aset.candidates)})")
    summary = unmatched_summary(aset, manifest, gold, status) if on_unmatched == "error" else None
    if summary is not None:
        raise InputError(f"{summary}; {hint}")
    return gold, status


def run_classification(
    model: Any,
    manifest: Manifest,
    aset: AttributeSet,
    out_dir: str | os.PathLike,
    *,
    split: str | None = None,
    template: str | None = None,
    ensemble: bool = False,
    batch_size: int = 8,
    top_n: int = 5,
    progress: bool = False,
    on_unmatched: str = "exclude",
    precision_source: str | None = None,
    centering: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Zero-shot classification of ``manifest`` over ``aset``'s candidates, written into ``out_dir``.

    Only rows whose gold label is a candidate are embedded and scored; rows with another label are
    counted as ``excluded`` (by label), rows without one as ``no_label``.

    Args:
        model: has ``embed_audio``, ``embed_text``, ``model_id``, ``checksum``.
        manifest: the rows.
        aset: candidates, prompts and gold field (see :mod:`paraspeechclap.data.attributes`).
        out_dir: report directory (created).
        split: dataset split name, recorded in the report.
        template: one template with ``{}`` instead of the set's default.
        ensemble: average the normalised embeddings of the set's prompt ensemble per class.
        batch_size: clips per batch.
        top_n: scores listed per clip in ``predictions.jsonl``.
        progress: show a progress bar.
        on_unmatched: ``"exclude"`` rows whose gold label is no candidate (counted in the report),
            or stop with an ``"error"`` that names those labels, before anything is embedded.
        precision_source: why the model runs in its precision, recorded beside it (see :func:`model_info`).
        centering: how to centre the audio embeddings (see :func:`embed_rows`; default none). The
            mean is over every row of the manifest, excluded ones too, so it never depends on labels.

    Returns:
        The ``metrics.json`` content.
    """
    gold, status = check_gold(aset, manifest, on_unmatched)
    todo = [i for i, s in enumerate(status) if s == "evaluated"]
    prompts = aset.prompts(template=template, ensemble=ensemble)
    candidates = list(aset.candidates)
    classes = embed_class_prompts(model, prompts, candidates)  # (C, D)
    info = centering_info(centering, len(manifest), model)
    if info["mode"] == "none" and not info["reference_clips"]:
        audio = embed_rows(model, manifest, todo, batch_size, progress)
    else:  # centre on every row, whatever its label, then keep the scored ones
        audio = embed_rows(model, manifest, range(len(manifest)), batch_size, progress, centering)[todo]
    scores = audio @ classes.T  # (n, C)
    pred = predict_labels(scores, candidates)
    m = classification_metrics([str(gold[i]) for i in todo], pred, candidates)
    # Excluded rows were never scored, so the metric function saw none of them: count them here.
    m["excluded"] = status.count("excluded")
    m["excluded_labels"] = dict(sorted(Counter(str(g) for g, s in zip(gold, status) if s == "excluded").items()))
    metrics: dict[str, Any] = {"task": "classification", "model": model_info(model, precision_source),
                               "data": {**_data_info(manifest, split), "evaluated": len(todo),
                                        "excluded": m["excluded"], "no_label": status.count("no_label")},
                               "centering": info}
    metrics["protocol"] = _classification_protocol(aset, prompts, template, ensemble, on_unmatched)
    metrics.update(m)
    metrics["software"] = _provenance()
    preds = _classification_predictions(manifest, gold, status, dict(zip(todo, range(len(todo)))),
                                        scores, candidates, top_n)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report.plot_confusion_matrix(m["confusion_matrix"], m["labels"], out / report.FILES["confusion"])
    report.write_report(out, metrics, preds, report.classification_markdown(metrics))  # metrics.json last
    return metrics


def _classification_protocol(aset: AttributeSet, prompts: Mapping[str, Sequence[str]], template: str | None,
                             ensemble: bool, on_unmatched: str) -> dict[str, Any]:
    return {
        "attribute_set": aset.name, "label_field": aset.field, "candidates": list(aset.candidates),
        # the words that fill {} may differ from the label the gold labels are compared with
        # (label "saddened" for --candidates sad; label "medium", phrase "medium-pitched")
        "phrases": {c: aset.label_phrases(c)[0] for c in aset.candidates},
        "metric_labels": "sorted candidates (absent classes count as 0 in UAR / macro-F1)",
        "template": template or (None if ensemble else aset.template), "ensemble": ensemble, "prompts": prompts,
        "unmatched_gold": "error" if on_unmatched == "error" else "excluded (counted in excluded, excluded_labels)",
        "prediction": "argmax cosine; ties go to the first candidate", "audio": "full length, embedded longest first",
    }


def _classification_predictions(manifest: Manifest, gold: Sequence[str | None], status: Sequence[str],
                                scored: Mapping[int, int], scores: np.ndarray, candidates: Sequence[str],
                                top_n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(len(manifest)):
        row: dict[str, Any] = {"index": i, "path": str(manifest.audio_path(i)), "key": manifest.key(i),
                               "gold": gold[i], "status": status[i], "predicted": None, "correct": None, "top": []}
        if i in scored:
            s = scores[scored[i]]
            order = np.argsort(-s, kind="stable")
            row["predicted"] = candidates[int(order[0])]
            row["correct"] = row["predicted"] == gold[i]
            row["top"] = [{"label": candidates[j], "score": round(float(s[j]), 6)} for j in order[:top_n]]
        rows.append(row)
    return rows
