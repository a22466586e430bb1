"""A map-style dataset over a :class:`~paraspeechclap.data.manifest.Manifest` for a torch DataLoader."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from .manifest import Manifest, pick_caption, row_tags

#: ``loader(path) -> (S,) float32 waveform``; the default is :func:`paraspeechclap.audio.load_audio`.
AudioLoader = Callable[[Any], np.ndarray]


class StyleItem(NamedTuple):
    """One example.

    Attributes:
        audio: ``(S,)`` float32 waveform at 16 kHz, or the audio path when decoding is off.
        caption: the style caption (random draw from a list in training, the first in evaluation).
        tags: the row's intrinsic and situational tags, lower-cased.
        row: the manifest row itself (all fields), plus ``"index"`` (position in the manifest).
    """

    audio: Any
    caption: str
    tags: list[str]
    row: dict[str, Any]


def _default_loader(path: Any) -> np.ndarray:
    from ..audio import load_audio  # lazy: keeps this module importable without audio deps

    return load_audio(path)


class StyleDataset:
    """Manifest rows as (audio, caption, tags, row) items.

    Caption choice follows the official recipe: when ``text_description`` is a list, training
    draws one uniformly at every fetch, evaluation takes the first. The draw comes from a
    generator seeded by ``(seed, epoch, index)``, so it is reproducible, differs between epochs
    (call :meth:`set_epoch`) and does not depend on which DataLoader worker fetches the item.

    Args:
        manifest: the rows.
        train: draw captions at random (True) or take the first (False).
        decode: decode audio with ``audio_loader`` (True) or return the path (False).
        audio_loader: ``loader(path) -> waveform``; default :func:`paraspeechclap.audio.load_audio`.
        transform: optional ``transform(waveform, rng) -> waveform`` applied after decoding (e.g. a
            random crop); ``rng`` is the item's ``random.Random``.
        seed: base seed of the caption draws.
    """

    def __init__(
        self,
        manifest: Manifest,
        *,
        train: bool = False,
        decode: bool = True,
        audio_loader: AudioLoader | None = None,
        transform: Callable[[np.ndarray, random.Random], np.ndarray] | None = None,
        seed: int = 0,
    ) -> None:
        self.manifest = manifest
        self.train = train
        self.decode = decode
        self.audio_loader = audio_loader
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose caption draws (and transform randomness) ``__getitem__`` uses."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.manifest)

    def item_rng(self, index: int) -> random.Random:
        """The generator of item ``index`` in the current epoch (a fresh, reproducible one per call)."""
        return random.Random(f"{self.seed}/{self.epoch}/{index}")

    def __getitem__(self, index: int) -> StyleItem:
        row = self.manifest[index]
        rng = self.item_rng(index) if self.train else None
        caption = pick_caption(row, rng)
        path = self.manifest.audio_path(index)
        audio: Any = path
        if self.decode:
            loader = self.audio_loader or _default_loader
            audio = loader(path)
            if self.transform is not None:
                audio = self.transform(audio, rng or random.Random(f"{self.seed}/eval/{index}"))
        return StyleItem(audio, caption, row_tags(row), {**row, "index": index})
