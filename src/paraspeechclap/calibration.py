"""Temperature scaling of zero-shot class scores, and the calibration record that carries it.

Zero-shot classification ranks the candidates of an attribute set by ``logit_scale * cosine(audio,
class prompt embedding)``: the logits the model was trained with. Their softmax ranks well but its
probabilities are not calibrated (a contrastive model learns which caption wins, not how sure to
be). Temperature scaling (Guo et al. 2017, "On Calibration of Modern Neural Networks") divides the
logits by one scalar ``T > 0`` per attribute set, fitted on labelled clips by minimising the NLL.
It never changes the ranking, only the confidence.

Everything here is pure numpy (plus scipy for the 1-D search and matplotlib, imported lazily, for
the reliability diagrams). :class:`Calibration` is the record ``paraspeechclap calibrate`` writes;
it is tied to one model checksum and one centring, because both change the scores' spread.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_path, atomic_write_json
from .errors import InputError

#: bounds of the temperature search: T in [1e-3, 1e3] (searched in log T). Zero-shot logits span
#: roughly logit_scale * [-1, 1]; beyond these bounds the softmax is already one-hot or uniform.
T_MIN, T_MAX = 1e-3, 1e3
#: equal-width confidence bins of the ECE and the reliability diagrams
DEFAULT_BINS = 15
#: format version of ``calibration.json``
CALIBRATION_VERSION = 1


def _check(scores: np.ndarray, labels: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError(f"{what} must have shape (N, C) with N, C > 0, got {scores.shape}")
    if labels.shape != (scores.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be {scores.shape[0]} integers, got shape {labels.shape} ({labels.dtype})")
    if labels.min() < 0 or labels.max() >= scores.shape[1]:
        raise ValueError(f"labels must lie in [0, {scores.shape[1]}), got [{labels.min()}, {labels.max()}]")
    return scores, labels


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    top = logits.argmax(axis=1)
    z = logits - logits[np.arange(len(logits)), top][:, None]  # shift: exp never overflows
    rest = np.exp(z)
    rest[np.arange(len(logits)), top] = 0.0
    # log1p of the non-top mass: log(1 + 1e-20) would round to 0 and flatten the NLL of confident
    # rows, leaving the temperature search a plateau instead of a slope
    return z - np.log1p(rest.sum(axis=1, keepdims=True))


def apply(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Calibrated probabilities ``softmax(logits / T)``.

    Args:
        logits: ``(N, C)`` zero-shot logits (``logit_scale * cosine``).
        temperature: ``T > 0`` (1 leaves the model's own softmax).

    Returns:
        ``(N, C)`` float64 rows that sum to 1.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return np.exp(_log_softmax(np.asarray(logits, dtype=np.float64) / temperature))


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean NLL (nats) of ``softmax(logits / T)`` at the gold labels.

    Args:
        logits: ``(N, C)``.
        labels: ``(N,)`` gold class indices.
    """
    logits, labels = _check(logits, labels, "logits")
    logp = _log_softmax(logits / temperature)
    return float(-logp[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature ``T`` that minimises the mean NLL of ``softmax(logits / T)``.

    A bounded 1-D search over ``log T`` in ``[log T_MIN, log T_MAX]`` (``T`` in ``[1e-3, 1e3]``).
    The NLL is convex in ``1 / T``, hence unimodal in ``log T``, so Brent's bounded search finds
    the global minimum. A result at a bound means the scores carry no usable confidence (every
    clip right: ``T_MIN``; no better than chance: ``T_MAX``).

    Args:
        logits: ``(N, C)`` zero-shot logits.
        labels: ``(N,)`` gold class indices.

    Returns:
        ``T`` as a float.
    """
    from scipy.optimize import minimize_scalar

    logits, labels = _check(logits, labels, "logits")
    rows = np.arange(len(labels))

    def nll(log_t: float) -> float:
        return float(-_log_softmax(logits / np.exp(log_t))[rows, labels].mean())

    res = minimize_scalar(nll, bounds=(np.log(T_MIN), np.log(T_MAX)), method="bounded",
                          options={"xatol": 1e-6})
    return float(np.exp(res.x))


def at_bound(temperature: float, rel: float = 1e-3) -> bool:
    """Whether a fitted temperature sits at a search bound (see :func:`fit_temperature`)."""
    return temperature <= T_MIN * (1 + rel) or temperature >= T_MAX * (1 - rel)


def model_logit_scale(model: Any) -> float:
    """The model's ``logit_scale`` as it runs (in bf16 the parameter itself is rounded)."""
    return float(model.logit_scale.detach().float().item())


def zero_shot_logits(model: Any, audio: np.ndarray, aset: Any) -> np.ndarray:
    """``(N, C)`` float64 zero-shot logits of ``(N, D)`` unit audio embeddings against an attribute set:
    the model's ``logit_scale`` times the cosines to each class's prompt-ensemble embedding (what
    ``classify --attribute`` ranks by, ``calibrate`` fits and ``annotate`` turns into probabilities)."""
    from .evaluation.classification import attribute_set_scores

    return model_logit_scale(model) * attribute_set_scores(model, audio, aset, ensemble=True).astype(np.float64)


def bin_stats(probs: np.ndarray, labels: np.ndarray, bins: int = DEFAULT_BINS
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-label statistics in ``bins`` equal-width confidence bins over ``[0, 1]``.

    Bin ``b`` holds confidences in ``(edges[b], edges[b + 1]]`` with ``edges = linspace(0, 1,
    bins + 1)``; the first bin also holds a confidence of exactly 0.

    Args:
        probs: ``(N, C)`` probabilities; confidence = max prob, correct = argmax == label (ties:
            the first class, as :func:`numpy.argmax`).
        labels: ``(N,)`` gold class indices.

    Returns:
        ``(counts, accuracy, confidence)``, each ``(bins,)``: clips per bin, their accuracy and
        mean confidence (0 for empty bins).
    """
    probs, labels = _check(probs, labels, "probs")
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # side="left": the index i with edges[i-1] < c <= edges[i], i.e. (lo, hi] bins; c = 0 gives 0.
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    counts = np.bincount(idx, minlength=bins).astype(np.int64)
    denom = np.maximum(counts, 1)
    acc = np.bincount(idx, weights=correct, minlength=bins) / denom
    mean_conf = np.bincount(idx, weights=conf, minlength=bins) / denom
    return counts, acc, mean_conf


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = DEFAULT_BINS) -> float:
    """Top-label ECE: ``sum_b (n_b / N) * |accuracy_b - confidence_b|`` over the bins of :func:`bin_stats`.

    Args:
        probs: ``(N, C)`` probabilities.
        labels: ``(N,)`` gold class indices.
        bins: equal-width bins over ``[0, 1]``, ``(lo, hi]`` (the first also holds 0).

    Returns:
        ECE in ``[0, 1]``.
    """
    counts, acc, conf = bin_stats(probs, labels, bins)
    return float(np.sum(counts / counts.sum() * np.abs(acc - conf)))


def calibration_metrics(logits: np.ndarray, labels: np.ndarray, bins: int = DEFAULT_BINS) -> dict[str, float]:
    """``{"ece", "nll"}`` of ``softmax(logits)`` (pass logits already divided by ``T``)."""
    return {"ece": expected_calibration_error(apply(logits, 1.0), labels, bins),
            "nll": negative_log_likelihood(logits, labels)}


# -- held-out evaluation -------------------------------------------------------------------------
def fold_indices(n: int, folds: int = 5, groups: Sequence[Any] | None = None, seed: int = 0) -> list[np.ndarray]:
    """Held-out row indices of K folds; a group (speaker) is never split across folds.

    Groups are shuffled with ``seed`` (manifests are often sorted by speaker or label), then
    placed largest first into the fold with the fewest rows so far, so folds have similar sizes.

    Args:
        n: number of rows.
        folds: K; fewer folds when there are fewer groups.
        groups: ``(n,)`` group ids (any hashable), or None: each row is its own group.

    Returns:
        ``min(K, groups)`` sorted int arrays that partition ``range(n)``.

    Raises:
        ValueError: fewer than 2 groups (nothing to hold out), or ``folds < 2``.
    """
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    keys = list(range(n)) if groups is None else list(groups)
    if len(keys) != n:
        raise ValueError(f"groups has {len(keys)} ids for {n} rows")
    members: dict[Any, list[int]] = {}
    for i, g in enumerate(keys):
        members.setdefault(g, []).append(i)
    if len(members) < 2:
        raise ValueError(f"cross-validation needs at least 2 groups, got {len(members)}")
    order = [list(members.values())[j] for j in np.random.default_rng(seed).permutation(len(members))]
    order.sort(key=len, reverse=True)  # stable: equal sizes keep the shuffled order
    k = min(folds, len(members))
    out: list[list[int]] = [[] for _ in range(k)]
    for rows in order:
        min(out, key=len).extend(rows)  # min() returns the first of equal sizes: deterministic
    return [np.array(sorted(f), dtype=np.int64) for f in out]


def cross_validated_logits(logits: np.ndarray, labels: np.ndarray, folds: int = 5,
                           groups: Sequence[Any] | None = None, seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """Out-of-fold calibrated logits: each fold divided by the ``T`` fitted on the other folds.

    Args:
        logits: ``(N, C)``; labels: ``(N,)``; folds, groups, seed: see :func:`fold_indices`.

    Returns:
        ``(scaled, temperatures)``: ``(N, C)`` logits ``logits[i] / T_fold(i)``, and one ``T`` per fold.
    """
    logits, labels = _check(logits, labels, "logits")
    scaled = np.empty_like(logits)
    temps = []
    for held in fold_indices(len(labels), folds, groups, seed):
        fit = np.setdiff1d(np.arange(len(labels)), held)
        t = fit_temperature(logits[fit], labels[fit])
        scaled[held] = logits[held] / t
        temps.append(t)
    return scaled, temps


# -- reliability diagrams ------------------------------------------------------------------------
def _draw_panel(top: Any, bottom: Any, probs: np.ndarray, labels: np.ndarray, bins: int, title: str) -> None:
    from matplotlib.ticker import MaxNLocator

    counts, acc, conf = bin_stats(probs, labels, bins)
    width = 1.0 / bins
    lefts = np.arange(bins) * width
    full = counts > 0
    top.bar(lefts[full], acc[full], width=width, align="edge", color="tab:blue", edgecolor="white",
            label="accuracy")
    # the gap between accuracy and the bin's mean confidence: what the ECE sums (weighted by counts)
    top.bar(lefts[full], np.abs(conf - acc)[full], bottom=np.minimum(acc, conf)[full], width=width, align="edge",
            fill=False, hatch="//", edgecolor="tab:red", linewidth=0.8, label="gap to mean confidence")
    top.plot([0, 1], [0, 1], color="black", linestyle="--", linewidth=1, label="perfect calibration")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"{title}\nECE {expected_calibration_error(probs, labels, bins):.3f}, {len(labels)} clips",
                  fontsize=9)
    top.legend(loc="upper left", fontsize=7)
    top.tick_params(labelbottom=False)
    bottom.bar(lefts, counts, width=width, align="edge", color="tab:gray", edgecolor="white")
    bottom.set_xlim(0, 1)
    bottom.yaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set_xlabel("confidence (max probability)")
    bottom.set_ylabel("clips")


def reliability_diagrams(panels: Mapping[str, np.ndarray], labels: np.ndarray, path: str | os.PathLike,
                         bins: int = DEFAULT_BINS, title: str | None = None) -> Path:
    """Reliability diagrams side by side (e.g. before | after), written atomically as PNG.

    Each panel: accuracy per confidence bin against the diagonal, with the bin counts below.

    Args:
        panels: panel title -> ``(N, C)`` probabilities of the same clips.
        labels: ``(N,)`` gold class indices.
        path: output PNG.
        bins: equal-width confidence bins (as :func:`expected_calibration_error`).
        title: figure title.
    """
    # Agg canvas on this figure only: no pyplot state, no global backend switch.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.4 * len(panels), 5.6))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, len(panels), height_ratios=(3, 1))
    for k, (name, probs) in enumerate(panels.items()):
        top = fig.add_subplot(grid[0, k])
        _draw_panel(top, fig.add_subplot(grid[1, k], sharex=top), probs, labels, bins, name)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return path


def reliability_diagram(probs: np.ndarray, labels: np.ndarray, path: str | os.PathLike, bins: int = DEFAULT_BINS,
                        title: str = "reliability") -> Path:
    """One reliability diagram (see :func:`reliability_diagrams`) of ``(N, C)`` probabilities."""
    return reliability_diagrams({title: probs}, labels, path, bins)


# -- the record ----------------------------------------------------------------------------------
def center_key(mode: str, reference: Sequence[Any] | None = None) -> str:
    """The centring a calibration is tied to: the mode, ``+reference`` when reference clips are used."""
    return f"{mode}+reference" if reference else mode


@dataclass
class Calibration:
    """Per-attribute-set temperatures for one model and one centring (``calibration.json``).

    Attributes:
        model_checksum: sha256 of the model's weights file (``model.checksum``).
        center: :func:`center_key` of the run (centring changes the cosines' spread).
        temperatures: attribute set -> ``T``, fitted on every labelled row.
        metrics: attribute set -> held-out ``before`` / ``after`` ``{"ece", "nll"}`` and how the
            rows were held out (see ``paraspeechclap calibrate``).
        version: format version (:data:`CALIBRATION_VERSION`).
        model_id: the model's name, for people (the checksum is what is checked).
        logit_scale: the model's ``logit_scale``: logits are ``logit_scale * cosine``.
        info: data, protocol and software provenance.
        source: the file it was loaded from (not saved; for messages).
    """

    model_checksum: str
    center: str
    temperatures: dict[str, float]
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: int = CALIBRATION_VERSION
    model_id: str = ""
    logit_scale: float | None = None
    info: dict[str, Any] = field(default_factory=dict)
    source: str | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        del out["source"]
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write the record as JSON, atomically."""
        atomic_write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Calibration:
        """Read a record written by :meth:`save`.

        Raises:
            InputError: missing or unreadable file, another format version, missing fields.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{path}: calibration not found") from None
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a calibration file ({exc})") from None
        if not isinstance(data, dict) or data.get("version") != CALIBRATION_VERSION:
            got = data.get("version") if isinstance(data, dict) else None
            raise InputError(f"{path}: calibration format version {got!r}, expected {CALIBRATION_VERSION}")
        names = {f.name for f in dataclasses.fields(cls)} - {"source"}
        missing = sorted(n for n in ("model_checksum", "center", "temperatures") if n not in data)
        if missing:
            raise InputError(f"{path}: calibration lacks {', '.join(missing)}")
        return cls(**{k: v for k, v in data.items() if k in names}, source=str(path))

    def check(self, model_checksum: str, center: str) -> None:
        """Refuse a run whose model or centring differs from the one this was fitted for.

        An empty checksum (a model built in memory, not loaded from a file) never matches: its
        identity is unknown.

        Raises:
            InputError: one line naming both models (12 hex digits) and centrings.
        """
        if model_checksum and model_checksum == self.model_checksum and center == self.center:
            return
        name = self.source or "record"
        raise InputError(f"calibration {name} was fitted for model {_short(self.model_checksum)} with "
                         f"center={self.center}; this run uses model {_short(model_checksum)} with center={center}")

    def temperature(self, attribute_set: str) -> float:
        """``T`` of one attribute set.

        Raises:
            InputError: the set was not calibrated (the message lists those that were).
        """
        if attribute_set not in self.temperatures:
            raise InputError(f"calibration {self.source or 'record'} has no temperature for {attribute_set!r}; "
                             f"it has: {', '.join(self.temperatures) or 'none'}")
        return float(self.temperatures[attribute_set])


def _short(checksum: str) -> str:
    return checksum[:12] if checksum else "<no checksum>"


def shipped_calibration(model_name: str | None, model: Any, center: str | None = "none") -> Calibration | None:
    """The ``calibration.json`` shipped beside a model (``--model`` name or folder) when it was fitted
    for these weights and, unless ``center`` is None, for this centring key (:func:`center_key`); else None."""
    from .pretrained import model_dir

    folder = model_dir(model_name)
    path = folder / "calibration.json" if folder is not None else None
    if path is None or not path.is_file():
        return None
    cal = Calibration.load(path)
    if cal.model_checksum != model.checksum or (center is not None and cal.center != center):
        return None
    return cal
