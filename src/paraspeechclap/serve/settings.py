"""Options of the service: limits per request, batching and access (one place for the defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: defaults of the limits (the CLI flags change them)
MAX_CLIPS = 32
MAX_CLIP_MB = 10.0
MAX_CLIP_SECONDS = 30.0
MAX_CAPTIONS = 256
MAX_WAIT_MS = 10.0


@dataclass
class ServeSettings:
    """What ``paraspeechclap serve`` was started with.

    Attributes:
        batch_size: the largest model batch the batcher forms (clips per forward pass).
        max_wait_ms: how long the batcher waits for more clips after the first one of a batch.
        max_clips: clips per request (also candidates of ``/v1/rerank``, pairs of ``/v1/reward``).
        max_clip_mb: encoded size of one clip.
        max_clip_seconds: duration of one clip.
        max_captions: captions, candidates or prompts per request.
        allow_paths: a folder whose files requests may name by path (None: no paths).
        api_key: the key requests must present (None: open).
        index: a search index folder for ``/v1/search`` (None: no search).
        skip_warmup: do not run one clip through the model before accepting requests.
    """

    batch_size: int = 16
    max_wait_ms: float = MAX_WAIT_MS
    max_clips: int = MAX_CLIPS
    max_clip_mb: float = MAX_CLIP_MB
    max_clip_seconds: float = MAX_CLIP_SECONDS
    max_captions: int = MAX_CAPTIONS
    allow_paths: Path | None = None
    api_key: str | None = None
    index: Path | None = None
    skip_warmup: bool = False

    @property
    def max_clip_bytes(self) -> int:
        return int(self.max_clip_mb * 1_000_000)

    @property
    def max_body_bytes(self) -> int:
        """A whole request: every clip at its limit, base64-encoded (4/3), plus 1 MB of fields."""
        return int(self.max_clips * self.max_clip_bytes * 4 / 3) + 1_000_000

    def limits(self) -> dict[str, float | int]:
        """The limits, as ``/v1/models`` reports them."""
        return {"max_clips": self.max_clips, "max_clip_mb": self.max_clip_mb,
                "max_clip_seconds": self.max_clip_seconds, "max_captions": self.max_captions,
                "max_batch": self.batch_size, "max_wait_ms": self.max_wait_ms}
