"""Prometheus metrics of one service instance (its own registry: two apps in one process stay apart)."""

from __future__ import annotations

from typing import Any


class Metrics:
    """Requests, latency, batches and the prompt cache, exposed as Prometheus text at ``/metrics``."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("paraspeechclap_requests", "HTTP requests by endpoint and status",
                                ["endpoint", "status"], registry=r)
        self.latency = Histogram("paraspeechclap_request_seconds", "request latency by endpoint", ["endpoint"],
                                 registry=r, buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
        self.in_flight = Gauge("paraspeechclap_requests_in_flight", "requests being served", registry=r)
        self.clips = Counter("paraspeechclap_clips", "clips embedded", registry=r)
        self.batch_size = Histogram("paraspeechclap_batch_size", "clips per model batch", registry=r,
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128))
        self.batch_seconds = Histogram("paraspeechclap_batch_seconds", "model time per batch", registry=r,
                                       buckets=(.01, .025, .05, .1, .25, .5, 1, 2.5, 5))
        self.prompt_cache = Counter("paraspeechclap_prompt_cache", "prompt embedding cache look-ups by result",
                                    ["result"], registry=r)

    def on_batch(self, size: int, seconds: float) -> None:
        self.clips.inc(size)
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def snapshot(self) -> dict[str, Any]:
        """Counts for tests and the load benchmark: batches formed and clips in them."""
        batches = clips = 0.0
        for metric in self.batch_size.collect():
            for s in metric.samples:
                if s.name.endswith("_count"):
                    batches = s.value
                elif s.name.endswith("_sum"):
                    clips = s.value
        return {"batches": int(batches), "batched_clips": int(clips)}
