"""Linear layers through oneDNN with their weights packed once: the fp32 CPU inference path of the Whisper blocks.

``nn.Linear`` on the CPU calls MKL's sgemm. oneDNN's linear, given a weight reordered once into its own
blocked layout (the path ``torch.compile``'s CPU backend takes), ran Whisper-base's block shapes 1.2-1.4x as
fast at 2 threads (250 frames, one 5 s clip: fc1 3.43 -> 2.48 ms, fc2 3.04 -> 2.42 ms, 512x512 0.72 -> 0.61 ms;
the default model's fp32 path 1.16x, ``benchmarks/packed_linear.py``), and it applies GELU in the same pass.
The results differ from ``nn.Linear``'s by summation order only (about 3e-6 on unit-scale outputs).

It is taken only where it changes nothing else: no autograd (the packed op has no backward), fp32 CPU
tensors, plain ``nn.Linear`` layers (int8's quantised layers keep their own kernels), and a PyTorch that
has the ops; ``PARASPEECHCLAP_PACKED_LINEAR=0`` turns it off, and :func:`plain_linears` within a block of
code (the training feature cache uses it). A packed weight is remade whenever the layer's tensors change (a
training step, ``load_state_dict``, a move), keyed on their identity and version counter. The packed copies
cost memory beside the weights: about 50 MB for the default model's four Whisper-base blocks.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from collections.abc import Iterator, Sequence

import torch
from torch import nn

ENV_SWITCH = "PARASPEECHCLAP_PACKED_LINEAR"
POST_OPS = {"none": ("none", ""), "gelu": ("gelu", "none")}  # oneDNN post-op and its algorithm ("none": erf GELU)


_PLAIN = contextvars.ContextVar("paraspeechclap_plain_linears", default=False)


@contextlib.contextmanager
def plain_linears() -> Iterator[None]:
    """Within it (in this thread or task), every layer runs as plain ``nn.Linear``."""
    token = _PLAIN.set(True)
    try:
        yield
    finally:
        _PLAIN.reset(token)


@functools.cache  # asked on every block's forward; the answer cannot change within a process
def _ops_available() -> bool:
    ops = torch.ops.mkldnn
    return (torch.backends.mkldnn.is_available() and hasattr(ops, "_reorder_linear_weight")
            and hasattr(ops, "_linear_pointwise"))


def usable(x: torch.Tensor, linears: Sequence[nn.Module]) -> bool:
    """Whether :func:`packed_linear` may replace ``linears`` applied to ``x`` (see the module docstring)."""
    return (not torch.is_grad_enabled() and x.device.type == "cpu" and x.dtype == torch.float32
            and all(type(m) is nn.Linear and m.weight.dtype == torch.float32 for m in linears)
            and not _PLAIN.get() and os.environ.get(ENV_SWITCH, "1") != "0" and _ops_available())


def _key(linears: Sequence[nn.Linear]) -> tuple:
    tensors = [t for m in linears for t in (m.weight, m.bias) if t is not None]
    return tuple((id(t), t._version, t.data_ptr()) for t in tensors)


def _pack(linears: Sequence[nn.Linear]) -> tuple[torch.Tensor, torch.Tensor]:
    """The layers stacked on their output axis: ``(sum(out), in)`` reordered weight, ``(sum(out),)`` bias
    (zeros where a layer has none, as Whisper's ``k_proj``)."""
    weight = torch.cat([m.weight.detach() for m in linears])
    bias = torch.cat([m.bias.detach() if m.bias is not None else m.weight.new_zeros(m.out_features)
                      for m in linears])
    return torch.ops.mkldnn._reorder_linear_weight(weight), bias


def packed_linear(owner: nn.Module, name: str, linears: Sequence[nn.Linear], x: torch.Tensor,
                  post: str = "none") -> torch.Tensor:
    """``(..., in)`` -> ``(..., sum of the layers' out)``: ``linears`` applied to ``x`` as one GEMM and
    concatenated, then ``post`` (``"none"`` or ``"gelu"``). The packed weight is cached on ``owner``
    under ``name``. Callers check :func:`usable` first."""
    cache: dict[str, tuple] = owner.__dict__.setdefault("_packed_linears", {})
    key = _key(linears)
    if name not in cache or cache[name][0] != key:
        cache[name] = (key, *_pack(linears))
    _, weight, bias = cache[name]
    attr, algorithm = POST_OPS[post]
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, attr, [], algorithm)
