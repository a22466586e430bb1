"""Whisper's audio encoder in plain PyTorch: the network behind the ``"whisper"`` backbone.

The same layers, parameter names and arithmetic as ``transformers``' ``WhisperEncoder`` (pre-LayerNorm
blocks, queries scaled before the product, exact GELU), so its state dict and its outputs are the
same (pinned by ``tests/test_whisper_net.py``). It exists so that the default model needs no
``transformers`` import for its audio side: that import costs about 2 s on a small machine, which
every process that embeds audio only (an annotation actor, a worker) would otherwise pay.

Only what :class:`~paraspeechclap.encoders.whisper.WhisperAudioEncoder` uses is here: the convolutional
front end, the positional table, the blocks (with optional activation checkpointing) and the final
LayerNorm; it runs the blocks itself, so this module has no forward pass of its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .packed_linear import packed_linear, usable


@dataclass
class WhisperNetConfig:
    """Shape of a Whisper encoder (the field names of ``transformers``' ``WhisperConfig``)."""

    num_mel_bins: int = 80
    d_model: int = 384
    encoder_layers: int = 4
    encoder_attention_heads: int = 6
    encoder_ffn_dim: int = 1536
    max_source_positions: int = 1500

    @classmethod
    def from_dict(cls, values: dict[str, int]) -> "WhisperNetConfig":
        return cls(**{k: int(v) for k, v in values.items()})

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class WhisperSelfAttention(nn.Module):
    """Multi-head self-attention; ``k_proj`` has no bias, as in Whisper."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not a multiple of {heads} heads")
        self.heads, self.head_dim = heads, d_model // heads
        self.scaling = self.head_dim ** -0.5
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, T, D)`` states, additive ``(B, 1, 1, T)`` key mask or None -> ``(B, T, D)``."""
        bsz, n, _ = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, H, T, D/H), laid out as transformers does
            return t.view(bsz, n, self.heads, self.head_dim).transpose(1, 2).contiguous()

        projections = (self.q_proj, self.k_proj, self.v_proj)
        if usable(x, (*projections, self.out_proj)):  # one packed GEMM for q, k and v (fp32 CPU inference)
            q, k, v = packed_linear(self, "qkv", projections, x).view(bsz, n, 3, self.heads, self.head_dim) \
                .permute(2, 0, 3, 1, 4).contiguous()  # each (B, H, T, D/H), laid out as the plain path
            out = F.scaled_dot_product_attention(q * self.scaling, k, v, attn_mask=mask, scale=1.0)
            return packed_linear(self, "out", (self.out_proj,), out.transpose(1, 2).reshape(bsz, n, -1))
        # scaled before the product (not inside it), as Whisper and transformers do: the rounding differs
        q = heads(self.q_proj(x) * self.scaling)
        out = F.scaled_dot_product_attention(q, heads(self.k_proj(x)), heads(self.v_proj(x)), attn_mask=mask,
                                             scale=1.0)
        return self.out_proj(out.transpose(1, 2).reshape(bsz, n, -1))


class WhisperBlock(nn.Module):
    """Pre-LayerNorm transformer block: attention, then a GELU feed-forward, each with a residual."""

    def __init__(self, cfg: WhisperNetConfig) -> None:
        super().__init__()
        self.self_attn = WhisperSelfAttention(cfg.d_model, cfg.encoder_attention_heads)
        self.self_attn_layer_norm = nn.LayerNorm(cfg.d_model)
        self.fc1 = nn.Linear(cfg.d_model, cfg.encoder_ffn_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_dim, cfg.d_model)
        self.final_layer_norm = nn.LayerNorm(cfg.d_model)
        self.checkpointing = False  # recompute activations in the backward pass (set by WhisperNet)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, T, D)`` -> ``(B, T, D)``; ``mask`` as :meth:`WhisperSelfAttention.forward`."""
        if self.checkpointing and self.training and torch.is_grad_enabled():
            from torch.utils.checkpoint import checkpoint

            return checkpoint(self._forward, x, mask, use_reentrant=False)
        return self._forward(x, mask)

    def _forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm(x), mask)
        x = x + self._feed_forward(self.final_layer_norm(x))
        if x.dtype == torch.float16:  # as Whisper: keep fp16 activations finite
            limit = torch.finfo(x.dtype).max - 1000
            x = x.clamp(-limit, limit)
        return x

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` -> ``(B, T, D)``: fc2(GELU(fc1(x))), GELU fused into fc1 on the packed path."""
        if usable(x, (self.fc1, self.fc2)):
            return packed_linear(self, "fc2", (self.fc2,), packed_linear(self, "fc1", (self.fc1,), x, post="gelu"))
        return self.fc2(F.gelu(self.fc1(x)))


class WhisperNet(nn.Module):
    """Whisper's encoder: two GELU convolutions (the second with stride 2), a positional table, the
    blocks and a final LayerNorm.

    Attributes:
        config: its :class:`WhisperNetConfig` (``encoder_layers`` follows trimming of ``layers``).
        dropout: 0 (Whisper's encoder is trained without it; kept for the caller's dropout call).
    """

    def __init__(self, config: WhisperNetConfig) -> None:
        super().__init__()
        self.config, self.dropout = config, 0.0
        d = config.d_model
        self.conv1 = nn.Conv1d(config.num_mel_bins, d, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d, d, kernel_size=3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(config.max_source_positions, d)
        self.embed_positions.requires_grad_(False)  # a fixed sinusoid table in Whisper
        self.layers = nn.ModuleList(WhisperBlock(config) for _ in range(config.encoder_layers))
        self.layer_norm = nn.LayerNorm(d)

    # the names transformers' models use, which encoders.base.set_grad_checkpointing calls
    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs: dict | None = None) -> None:
        """Recompute each block's activations in the backward pass (non-reentrant) instead of storing them."""
        for block in self.layers:
            block.checkpointing = True

    def gradient_checkpointing_disable(self) -> None:
        for block in self.layers:
            block.checkpointing = False
