"""Evaluation reports: ``metrics.json``, ``predictions.jsonl``, ``metrics.md`` and PNG plots.

Every file is written atomically (a temporary file in the same directory, then ``os.replace``), so
an interrupted run never leaves a half-written report. Plots use matplotlib's object API with the
Agg canvas (no pyplot, no global backend switch), imported lazily.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path, atomic_write_json, atomic_write_text

FILES = {
    "metrics": "metrics.json",
    "predictions": "predictions.jsonl",
    "markdown": "metrics.md",
    "confusion": "confusion_matrix.png",
    "recall_curve": "recall_at_k.png",
}


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_json(path, obj)
    return Path(path)


def write_jsonl(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> Path:
    """Write one JSON object per line, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return Path(path)


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _model_line(model: Mapping[str, Any]) -> str:
    """``model `id`, precision fp32 (official checkpoint default)``: precision changes the numbers."""
    source = model.get("precision_source")
    return (f"model `{model.get('id', '?')}`, precision {model.get('precision', '?')}"
            + (f" ({source})" if source else ""))


def retrieval_markdown(metrics: Mapping[str, Any]) -> str:
    """Markdown table of retrieval metrics (R@k in %, ranks as numbers).

    Args:
        metrics: the ``metrics.json`` dict of a retrieval run (keys ``audio_to_text``,
            ``text_to_audio``, ``data``, ``model``).
    """
    a2t = metrics["audio_to_text"]
    ks = [key for key in a2t if key.startswith("R@")]
    head = "| direction | " + " | ".join(f"{k} (%)" for k in ks) + " | MedR | MeanR | queries |"
    lines = [head, "|" + "---|" * (len(ks) + 4)]
    for name, label in (("audio_to_text", "audio → text (official)"), ("text_to_audio", "text → audio")):
        m = metrics[name]
        cells = [_pct(m[k]) for k in ks] + [f"{m['median_rank']:g}", f"{m['mean_rank']:.2f}", str(m["count"])]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    data, model = metrics.get("data", {}), metrics.get("model", {})
    tie_rule = metrics.get("protocol", {}).get("tie_rule", "?")
    lines += ["", f"{data.get('clips', '?')} clips, {data.get('unique_captions', '?')} unique captions; "
              + f"{_model_line(model)}; ties: {tie_rule}."]
    return "\n".join(lines) + "\n"


def classification_markdown(metrics: Mapping[str, Any]) -> str:
    """Markdown summary and per-class table of classification metrics (in %).

    Args:
        metrics: the ``metrics.json`` dict of a classification run.
    """
    lines = [
        "| accuracy (%) | UAR (%) | macro-F1 (%) | clips | excluded |",
        "|---|---|---|---|---|",
        f"| {_pct(metrics['accuracy'])} | {_pct(metrics['uar'])} | {_pct(metrics['macro_f1'])} "
        + f"| {metrics['count']} | {metrics['excluded']} |",
        "",
        "| class | recall (%) | precision (%) | F1 (%) | support | predicted |",
        "|---|---|---|---|---|---|",
    ]
    for label, m in metrics["per_class"].items():
        lines.append(
            f"| {label} | {_pct(m['recall'])} | {_pct(m['precision'])} | {_pct(m['f1'])} "
            f"| {m['support']} | {m['predicted']} |"
        )
    if metrics.get("excluded_labels"):
        excl = ", ".join(f"`{k}` ({v})" for k, v in metrics["excluded_labels"].items())
        lines += ["", f"Gold labels not among the candidates (excluded): {excl}."]
    lines += ["", f"{_model_line(metrics.get('model', {}))}."]
    return "\n".join(lines) + "\n"


def _save_figure(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path


def plot_confusion_matrix(cm: Sequence[Sequence[int]], labels: Sequence[str], path: str | os.PathLike) -> Path:
    """Row-normalised confusion matrix (rows gold, columns predicted) with counts, as PNG.

    Args:
        cm: ``(L, L)`` counts.
        labels: the L class names.
        path: output PNG path.
    """
    from matplotlib.figure import Figure

    counts = np.asarray(cm, dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    frac = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    size = 2.0 + 0.45 * len(labels)
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.add_subplot()
    im = ax.imshow(frac, vmin=0.0, vmax=1.0, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    if len(labels) <= 25:  # beyond that the numbers are unreadable
        for (i, j), n in np.ndenumerate(counts):
            if n:
                ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                        color="white" if frac[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, label="fraction of gold row")
    fig.tight_layout()
    return _save_figure(fig, Path(path))


def plot_recall_curves(curves: Mapping[str, Sequence[float]], path: str | os.PathLike) -> Path:
    """Recall@k against k (k = 1..K) for one or more directions, as PNG.

    Args:
        curves: name -> ``(K,)`` fractions.
        path: output PNG path.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for name, curve in curves.items():
        ax.plot(np.arange(1, len(curve) + 1), 100 * np.asarray(curve), marker=".", label=name)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save_figure(fig, Path(path))


def _write_text(path: Path, text: str) -> Path:
    atomic_write_text(path, text)
    return path


def write_report(
    out_dir: str | os.PathLike,
    metrics: Mapping[str, Any],
    predictions: Iterable[Mapping[str, Any]],
    markdown: str,
) -> dict[str, Path]:
    """Write ``metrics.json``, ``predictions.jsonl`` and ``metrics.md`` into ``out_dir`` (created).

    Returns:
        File role -> path written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return {
        "predictions": write_jsonl(out / FILES["predictions"], predictions),
        "markdown": _write_text(out / FILES["markdown"], markdown),
        # metrics.json last: its presence marks a complete report.
        "metrics": write_json(out / FILES["metrics"], metrics),
    }
