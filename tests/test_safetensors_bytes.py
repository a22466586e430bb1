"""Saved weights are byte-identical for identical tensors (the file checksum is the model's identity)."""

from __future__ import annotations

import json
import struct

import torch
from safetensors.torch import load

from paraspeechclap.pretrained import canonical_safetensors


def test_canonical_bytes_do_not_depend_on_metadata_order_and_load_back() -> None:
    tensors = {"b.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3), "a.bias": torch.ones(5)}
    first = canonical_safetensors(tensors, {"format": "pt", "paraspeechclap": "lite"})
    again = [canonical_safetensors(dict(reversed(tensors.items())), {"paraspeechclap": "lite", "format": "pt"})
             for _ in range(8)]  # the library's own header order varies between calls
    assert all(a == first for a in again)
    (n,) = struct.unpack("<Q", first[:8])
    assert n % 8 == 0
    header = json.loads(first[8 : 8 + n])
    assert list(header) == sorted(header) and list(header["__metadata__"]) == ["format", "paraspeechclap"]
    loaded = load(first)
    assert set(loaded) == set(tensors) and all(torch.equal(loaded[k], v) for k, v in tensors.items())
