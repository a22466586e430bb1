"""A style reward for training loops: the same call in-process or against ``paraspeechclap serve``.

    from paraspeechclap.client import StyleReward
    reward = StyleReward("http://gpu-box:8000")      # remote (stdlib HTTP, retries, timeouts)
    reward = StyleReward(model)                      # in-process, same numbers
    reward(["A deep voice, speaking slowly."], ["out/0.wav"])      # -> [0.31]
    reward(prompts=prompts, completions=audios)       # TRL GRPOTrainer's reward-function call

A reward is the cosine between the clip's audio embedding and its style prompt's text embedding, what
``rerank`` and ``POST /v1/reward`` compute. Clips are paths (the remote client uploads their bytes,
decoded by the server exactly as a local file) or 1-D arrays with ``sample_rate=`` (sent as float WAV,
so no precision is lost on the way).
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import AudioError, ParaSpeechCLAPError

#: statuses worth another try: the service is overloaded, restarting or behind a failing proxy
RETRY_STATUSES = (429, 502, 503, 504)


class ServiceError(ParaSpeechCLAPError):
    """The service refused a request (``status``), or could not be reached after the retries."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class StyleReward:
    """``reward(prompts, audios) -> list[float]``, remote or in-process.

    Args:
        target: the service's base URL (``http://host:port``), a loaded model, or a model name/folder
            for :func:`paraspeechclap.load_model`.
        sample_rate: rate of array clips when a call does not say (default 16 kHz).
        timeout: seconds per HTTP request.
        retries: further tries after a connection error, a timeout or a 429/502/503/504 answer.
        backoff: seconds before the first retry; doubled for each next one.
        api_key: the service's key (default: the ``PARASPEECHCLAP_API_KEY`` environment variable).
        bad_reward: the reward of a clip that cannot be scored (undecodable, silent); None (default)
            raises :class:`~paraspeechclap.errors.AudioError` naming the clip instead.
        prompt_column: with the TRL call, read style prompts from this keyword (a dataset column such
            as ``"description"``) rather than from ``prompts``.
        batch_size: clips per request (remote; at most the service's ``max_clips``) or per forward pass.
        gate_reward: when set, the quality gate (:class:`~paraspeechclap.reranking.quality.QualityGate`:
            noise, clipping; clips scored with their edge silence trimmed) is applied and a clip that
            fails it gets this reward: an RL policy then gains nothing from adding noise or silence.
        gate_min_snr_db: with ``gate_reward``, the gate's blind-SNR threshold (default: the gate's, 6 dB).
    """

    def __init__(self, target: Any, *, sample_rate: int | None = None, timeout: float = 60.0, retries: int = 3,
                 backoff: float = 0.5, api_key: str | None = None, bad_reward: float | None = None,
                 prompt_column: str | None = None, batch_size: int = 16, gate_reward: float | None = None,
                 gate_min_snr_db: float | None = None) -> None:
        from .errors import InputError

        if gate_min_snr_db is not None and gate_reward is None:
            raise InputError("gate_min_snr_db sets the threshold of the quality gate: set gate_reward too")
        if gate_min_snr_db is not None and not abs(gate_min_snr_db) < float("inf"):
            raise InputError(f"gate_min_snr_db must be a finite number, got {gate_min_snr_db}")
        self.sample_rate = sample_rate
        self.gate_reward, self.gate_min_snr_db = gate_reward, gate_min_snr_db
        self.bad_reward = bad_reward
        self.prompt_column = prompt_column
        self.batch_size = max(1, int(batch_size))
        self.__name__ = "style_reward"  # TRL logs reward functions by __name__
        if isinstance(target, str) and target.startswith(("http://", "https://")):
            self._backend: Any = _Remote(target.rstrip("/"), timeout, retries, backoff,
                                         api_key if api_key is not None else os.environ.get("PARASPEECHCLAP_API_KEY"))
        else:
            if isinstance(target, (str, os.PathLike)):
                from .pretrained import load_model

                target = load_model(str(target))
            self._backend = _Local(target)

    def __call__(self, prompts: Sequence[Any] | None = None, audios: Sequence[Any] | None = None, *,
                 completions: Sequence[Any] | None = None, sample_rate: int | None = None,
                 **kwargs: Any) -> list[float]:
        """One reward per (prompt, clip) pair, in order.

        ``completions`` is the TRL name for the clips; other keywords (TRL passes dataset columns) are
        ignored except ``prompt_column``. Conversational prompts (lists of ``{"role", "content"}``)
        use their last message's content; a clip may also be a ``{"array", "sampling_rate"}`` dict (the
        ``datasets`` Audio form).

        Raises:
            InputError: the lists differ in length.
            AudioError: a clip cannot be scored (without ``bad_reward``).
            ServiceError: the service refused the request or stayed unreachable.
        """
        from .errors import InputError

        if self.prompt_column is not None:
            if self.prompt_column not in kwargs:
                raise InputError(f"prompt_column {self.prompt_column!r} is not among the call's keywords "
                                 f"({', '.join(sorted(kwargs)) or 'none'})")
            prompts = kwargs[self.prompt_column]
        clips = completions if completions is not None else audios
        if prompts is None or clips is None:
            raise InputError("give the style prompts and the clips: reward(prompts, audios) or "
                             "reward(prompts=..., completions=...)")
        texts = [_prompt_text(p, i) for i, p in enumerate(prompts)]
        if len(texts) != len(clips):
            raise InputError(f"{len(texts)} prompts but {len(clips)} clips: give one prompt per clip")
        rate = sample_rate or self.sample_rate
        items = [_clip(c, rate, i) for i, c in enumerate(clips)]
        out: list[float] = []
        for s in range(0, len(items), self.batch_size):
            out.extend(self._chunk(texts[s:s + self.batch_size], items[s:s + self.batch_size]))
        return out

    def _chunk(self, texts: list[str], items: list[tuple[str, Any, int | None]]) -> list[float]:
        rewards, errors = self._backend.rewards(texts, items, skip_bad=self.bad_reward is not None,
                                                gate_reward=self.gate_reward, gate_min_snr_db=self.gate_min_snr_db)
        if errors and self.bad_reward is None:
            raise AudioError(errors[0])
        return [self.bad_reward if r is None else float(r) for r in rewards]  # type: ignore[misc]


def _prompt_text(prompt: Any, i: int) -> str:
    from .errors import InputError

    if isinstance(prompt, list) and prompt and isinstance(prompt[-1], dict):
        prompt = prompt[-1].get("content")  # a chat: the last message holds the request
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(f"prompt #{i} is empty or not a string: {prompt!r}")
    return prompt


def _clip(clip: Any, rate: int | None, i: int) -> tuple[str, Any, int | None]:
    """``(name, path or (S,) float32 array, sample rate of an array)``."""
    if isinstance(clip, dict) and "array" in clip:
        return f"clip #{i}", np.asarray(clip["array"], dtype=np.float32), int(clip.get("sampling_rate") or 16000)
    if isinstance(clip, (str, os.PathLike)):
        return str(clip), os.fspath(clip), None
    return f"clip #{i}", np.asarray(clip, dtype=np.float32), rate


class _Local:
    """Rewards from a model in this process."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def rewards(self, texts: list[str], items: list[tuple[str, Any, int | None]], skip_bad: bool,
                gate_reward: float | None = None,
                gate_min_snr_db: float | None = None) -> tuple[list[float | None], list[str]]:
        from .audio.io import load_audio
        from .reranking import resolve_gate

        gate = resolve_gate(gate_reward is not None, gate_min_snr_db)
        failed: set[int] = set()
        min_samples = self.model.audio_branch.min_samples
        wavs: list[np.ndarray | None] = []
        errors = []
        for name, item, rate in items:
            try:
                wav = load_audio(item, rate, min_samples=min_samples, name=name)
                if gate is not None:
                    verdict, wav = gate.apply(wav)
                    if not verdict.ok:
                        failed.add(len(wavs))
                wavs.append(wav)
            except AudioError as exc:
                wavs.append(None)
                errors.append(str(exc))
                if not skip_bad:
                    return [], errors
        present = [w for w in wavs if w is not None]
        emb = iter(self.model.embed_audio(present, sample_rate=16000, batch_size=max(1, len(present))))
        text = self.model.embed_text(texts)
        out = [float(next(emb) @ t) if w is not None else None for w, t in zip(wavs, text)]
        return [gate_reward if i in failed else r for i, r in enumerate(out)], errors


class _Remote:
    """Rewards from ``POST /v1/reward``, with retries on transient failures."""

    def __init__(self, url: str, timeout: float, retries: int, backoff: float, api_key: str | None) -> None:
        self.url, self.timeout, self.retries, self.backoff, self.api_key = url, timeout, retries, backoff, api_key

    def rewards(self, texts: list[str], items: list[tuple[str, Any, int | None]], skip_bad: bool,
                gate_reward: float | None = None,
                gate_min_snr_db: float | None = None) -> tuple[list[float | None], list[str]]:
        audio = [{"name": name, "data": base64.b64encode(_encoded(name, item, rate)).decode("ascii")}
                 for name, item, rate in items]
        body: dict[str, Any] = {"prompts": texts, "audio": audio, "skip_bad": skip_bad}
        if gate_reward is not None:
            body.update(quality_gate=True, gate_reward=gate_reward)
            if gate_min_snr_db is not None:
                body["gate_min_snr_db"] = gate_min_snr_db
        answer = self.post("/v1/reward", body)
        return answer["rewards"], [e["message"] for e in answer.get("errors", [])]

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        delay = self.backoff
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(self.url + path, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                message = _error_message(exc)
                if exc.code == 422 and "audio" in body:
                    raise AudioError(message) from None
                if exc.code not in RETRY_STATUSES or attempt == self.retries:
                    raise ServiceError(f"{self.url}{path}: {exc.code} {message}", exc.code) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == self.retries:
                    reason = getattr(exc, "reason", exc)
                    raise ServiceError(f"{self.url}{path}: unreachable after {self.retries + 1} tries ({reason})"
                                       ) from None
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("error", exc.reason))
    except (ValueError, AttributeError):
        return str(exc.reason)


def _encoded(name: str, item: Any, rate: int | None) -> bytes:
    """A path's bytes as they are; an array as a float WAV (lossless) at its rate."""
    if isinstance(item, str):
        try:
            with open(item, "rb") as f:
                return f.read()
        except OSError as exc:
            raise AudioError(f"{name}: cannot read ({exc.strerror})") from None
    import soundfile as sf

    arr = np.asarray(item, dtype=np.float32)
    if arr.ndim == 2 and arr.shape[0] < arr.shape[1]:
        arr = arr.T  # (C, S) -> (S, C), as soundfile writes
    buf = io.BytesIO()
    sf.write(buf, arr, int(rate or 16000), format="WAV", subtype="FLOAT")
    return buf.getvalue()
