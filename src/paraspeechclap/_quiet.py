"""Silence the progress bars that libraries draw while they load models and data sets.

transformers draws a ``Loading weights`` bar for every ``from_pretrained`` and datasets draws bars
while it prepares or loads a data set. On a terminal they are noise around this project's output.
:func:`quiet_library_progress` turns those switches off for the duration of a block and then puts
back whatever was set before, so importing paraspeechclap changes nothing, and a program that wants
the library bars elsewhere keeps them. This project's own bars (``embedding``, ``training`` ...)
use :mod:`tqdm` directly and are not affected.

Two things are deliberately left alone:

* huggingface_hub's download bars. They appear only while a file is actually downloaded (the
  first use of a backbone or a released checkpoint, up to gigabytes), when a silent terminal would
  look like a hang.
* A library whose own environment variable forces its bars on (``HF_HUB_DISABLE_PROGRESS_BARS=0``
  for transformers, ``HF_DATASETS_DISABLE_PROGRESS_BARS=0`` for datasets): the user asked for them.

To cover another library, add an entry to :data:`_SWITCHES`.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
from collections.abc import Callable, Iterator

Restore = Callable[[], None]


def _hub_states() -> dict[str, bool] | None:
    """huggingface_hub's per-group progress-bar switches (None if this version has no such table)."""
    module = importlib.import_module("huggingface_hub.utils.tqdm")
    states = getattr(module, "progress_bar_states", None)
    return states if isinstance(states, dict) else None


def _put_back_hub(saved: dict[str, bool] | None) -> None:
    states = _hub_states()
    if saved is not None and states is not None:
        states.clear()
        states.update(saved)


def _hub_forces_bars() -> bool:
    return getattr(importlib.import_module("huggingface_hub.constants"), "HF_HUB_DISABLE_PROGRESS_BARS", None) is False


def _silence_transformers() -> Restore | None:
    """Turn off transformers' bars; its switch also flips huggingface_hub's, which is put back."""
    if _hub_forces_bars():
        return None
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hub = _hub_states()
    saved_hub = dict(hub) if hub is not None else None
    hf_logging.disable_progress_bar()
    _put_back_hub(saved_hub)

    def restore() -> None:
        if was_on:
            hub_now = _hub_states()
            saved_now = dict(hub_now) if hub_now is not None else None
            hf_logging.enable_progress_bar()
            _put_back_hub(saved_now)

    return restore


def _silence_datasets() -> Restore | None:
    import datasets

    if getattr(datasets.config, "HF_DATASETS_DISABLE_PROGRESS_BARS", None) is False:
        return None
    if not datasets.is_progress_bar_enabled():
        return lambda: None
    datasets.disable_progress_bars()
    return datasets.enable_progress_bars


#: library (top-level module name) -> function that silences it and returns how to undo that (None:
#: left alone). A library is handled only once it is imported: callers enter the block after
#: importing it, so a load never imports a library just to silence it.
_SWITCHES: dict[str, Callable[[], Restore | None]] = {
    "transformers": _silence_transformers,
    "datasets": _silence_datasets,
}

_lock = threading.Lock()
_depth = 0  # open blocks, over all threads: the switches are process-wide
_restores: dict[str, Restore | None] = {}  # libraries silenced by the open blocks


def _silence(name: str) -> Restore | None:
    try:
        return _SWITCHES[name]()
    except Exception:  # noqa: BLE001 - an unknown library version must never stop a load over a bar
        return None


@contextlib.contextmanager
def quiet_library_progress() -> Iterator[None]:
    """Within the block, the imported libraries of :data:`_SWITCHES` draw no progress bars.

    Blocks nest and may overlap across threads; the previous state comes back when the last open
    block ends (a counter, because the library switches are global).
    """
    global _depth
    with _lock:
        _depth += 1
        for name in _SWITCHES:
            if name not in _restores and name in sys.modules:
                _restores[name] = _silence(name)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                restores = [r for r in reversed(list(_restores.values())) if r is not None]
                _restores.clear()
                for restore in restores:
                    with contextlib.suppress(Exception):
                        restore()
