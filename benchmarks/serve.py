"""Load test of ``paraspeechclap serve``: throughput, latency, memory and bad requests under concurrency.

A local server (a subprocess, ``--precision`` as given) answers ``POST /v1/reward`` requests of one 5 s
clip and one style prompt (the RL trainer's call), sent by 1, 8 and 32 concurrent clients (threads of
this process on keep-alive connections, bodies prepared in advance) for ``--seconds`` each:

- requests/s, p50/p99 latency and errors per level;
- against the in-process batched throughput of the same model (``embed_audio`` of the same clips,
  ``--batch-size`` per pass, prompts cached) measured first in this process. Clients and server share
  the machine's cores, so the CPU time of each is read from ``/proc`` and the ratio is also given per
  CPU-second of the server (``ratio_cpu``: server requests per server CPU-second over in-process clips
  per CPU-second), the target being >= 0.8 at 32 clients;
- resident memory of the server after 1,000 and after 10,000 requests (``--soak``): within 10 %;
- a mixed run in which every 10th request is bad (undecodable, silent, too long, empty prompt, too many
  clips, unknown attribute set, in turn): every bad one must get its 4xx, every good one its 200.

    python benchmarks/serve.py                      # -> results/serve.json (about 15 minutes)
    python benchmarks/serve.py --seconds 10 --soak 1000 --json /tmp/serve.json   # quick look
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, add_json_arg, json_path, write_results  # noqa: E402

PROMPTS = ["A deep male voice, speaking slowly.", "A woman whispering.", "Someone speaking fast and loudly.",
           "A happy, high-pitched voice.", "An angry man shouting.", "A calm, measured narration.",
           "A sad, soft-spoken voice.", "A raspy voice speaking quickly."]
CLIP_SECONDS = 5.0
SR = 16000


def five_second_clips() -> list[np.ndarray]:
    """The example clips, each tiled or cut to 5 s at 16 kHz."""
    from paraspeechclap.audio import load_audio

    out = []
    for path in sorted((REPO / "examples").glob("*.flac")):
        wav = load_audio(str(path))
        n = int(CLIP_SECONDS * SR)
        out.append(np.tile(wav, int(np.ceil(n / len(wav))))[:n].astype(np.float32))
    return out


def wav_bytes(x: np.ndarray, sr: int = SR) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def reward_body(clip: bytes, prompt: str, **extra: Any) -> bytes:
    return json.dumps({"prompts": [prompt], "audio": [base64.b64encode(clip).decode()], **extra}).encode()


def in_process(model_name: str, precision: str, batch_size: int, clips: list[np.ndarray], seconds: float
               ) -> dict[str, float]:
    """Clips/s and CPU-seconds per clip of the model in this process, batched, prompts cached."""
    from paraspeechclap import load_model

    model = load_model(model_name, precision=precision)
    model.embed_text(PROMPTS)
    model.embed_audio(clips[:batch_size], batch_size=batch_size)  # warm up
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        batch = [clips[(n + i) % len(clips)] for i in range(batch_size)]
        emb = model.embed_audio(batch, batch_size=batch_size)
        _ = emb @ model.embed_text([PROMPTS[(n + i) % len(PROMPTS)] for i in range(batch_size)]).T
        n += batch_size
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    info = {"clips_per_s": n / wall, "cpu_s_per_clip": cpu / n, "clips": n, "precision": model.precision,
            "model": model.model_id, "checksum": model.checksum}
    del model
    return info


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Load:
    """``clients`` threads posting prepared bodies until ``seconds`` pass or ``total`` requests are sent.

    ``bodies`` is a list of ``(path, body, expected status)``; client k sends bodies k, k + clients, ...
    Each record is ``(latency_s, status, expected)``.
    """

    def __init__(self, port: int, bodies: list[tuple[str, bytes, int]], clients: int) -> None:
        self.port, self.bodies, self.clients = port, bodies, clients
        self.records: list[tuple[float, int, int]] = []
        self.lock = threading.Lock()
        self.sent = 0

    def _next(self) -> int | None:
        with self.lock:
            if self.total is not None and self.sent >= self.total:
                return None
            self.sent += 1
            return self.sent - 1

    def _client(self, deadline: float) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        while time.perf_counter() < deadline:
            k = self._next()
            if k is None:
                break
            path, body, expect = self.bodies[k % len(self.bodies)]
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            except (OSError, http.client.HTTPException):
                status = -1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            with self.lock:
                self.records.append((time.perf_counter() - t0, status, expect))
        conn.close()

    def run(self, seconds: float = 1e9, total: int | None = None, on_count: Any = None) -> dict[str, Any]:
        self.total = total
        deadline = time.perf_counter() + seconds
        threads = [threading.Thread(target=self._client, args=(deadline,)) for _ in range(self.clients)]
        t0, c0 = time.perf_counter(), time.process_time()
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            time.sleep(0.2)
            if on_count is not None:
                on_count(len(self.records))
        wall, client_cpu = time.perf_counter() - t0, time.process_time() - c0
        lat = sorted(r[0] for r in self.records)
        wrong = [r for r in self.records if r[1] != r[2]]
        return {"clients": self.clients, "requests": len(lat), "wall_s": round(wall, 2),
                "requests_per_s": round(len(lat) / wall, 3),
                "p50_ms": round(1000 * statistics.median(lat), 1) if lat else None,
                "p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1) if lat else None,
                "errors": len(wrong), "client_cpu_s": round(client_cpu, 2),
                "wrong_statuses": sorted({f"{r[1]} (expected {r[2]})" for r in wrong})[:10]}


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen:
    import urllib.request

    cmd = [sys.executable, "-m", "paraspeechclap", "serve", "--model", args.model, "--precision", args.precision,
           "--batch-size", str(args.batch_size), "--port", str(port), "--max-clip-seconds", "10"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"server failed: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            time.sleep(0.5)
    raise SystemExit("server did not start")


def bad_bodies(clip: bytes) -> list[tuple[str, bytes, int]]:
    """One bad request of each kind, with the status it must get."""
    silent = wav_bytes(np.zeros(SR, np.float32))
    too_long = wav_bytes(np.tile(np.float32([0.1, -0.1]), 6 * SR))  # 12 s: over the 10 s limit set here
    return [("/v1/reward", reward_body(b"not audio", PROMPTS[0]), 422),
            ("/v1/reward", reward_body(silent, PROMPTS[0]), 422),
            ("/v1/reward", reward_body(too_long, PROMPTS[0]), 413),
            ("/v1/reward", reward_body(clip, " "), 400),
            ("/v1/reward", json.dumps({"prompts": ["x"] * 33, "audio": [base64.b64encode(clip).decode()] * 33}).encode(),
             400),
            ("/v1/reward", reward_body(clip, PROMPTS[0], attribute_sets=["no_such_set"]), 404)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="lite")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60.0, help="per concurrency level")
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--soak", type=int, default=10_000, help="requests of the memory run (RSS at 1,000 and here)")
    ap.add_argument("--port", type=int, default=8931)
    add_json_arg(ap, "serve.json")
    args = ap.parse_args()

    clips = five_second_clips()
    baseline = in_process(args.model, args.precision, args.batch_size, clips, min(args.seconds, 30.0))
    print(f"in-process: {baseline['clips_per_s']:.1f} clips/s ({baseline['precision']})", file=sys.stderr)
    encoded = [wav_bytes(c) for c in clips]
    good = [("/v1/reward", reward_body(encoded[i % len(encoded)], PROMPTS[i % len(PROMPTS)]), 200) for i in range(64)]
    proc = start_server(args, args.port)
    try:
        Load(args.port, good, 4).run(total=64)  # warm up: prompt cache, allocator
        levels = []
        for c in args.levels:
            cpu0 = proc_cpu_s(proc.pid)
            res = Load(args.port, good, c).run(seconds=args.seconds)
            res["server_cpu_s"] = round(proc_cpu_s(proc.pid) - cpu0, 2)
            res["ratio"] = round(res["requests_per_s"] / baseline["clips_per_s"], 3)
            per_cpu = res["requests"] / max(res["server_cpu_s"], 1e-9)
            res["ratio_cpu"] = round(per_cpu * baseline["cpu_s_per_clip"], 3)
            res["client_cpu_share"] = round(res["client_cpu_s"] / (res["client_cpu_s"] + res["server_cpu_s"]), 3)
            levels.append(res)
            print(json.dumps(res), file=sys.stderr)
        rss: dict[str, float] = {}

        def sample(n: int) -> None:
            if n >= 1000 and "after_1000_mb" not in rss:
                rss["after_1000_mb"] = round(proc_rss_mb(proc.pid), 1)

        soak = Load(args.port, good, 32).run(total=args.soak, on_count=sample)
        rss[f"after_{args.soak}_mb"] = round(proc_rss_mb(proc.pid), 1)
        first = rss.get("after_1000_mb", float("nan"))
        growth = rss[f"after_{args.soak}_mb"] / first - 1
        bad = bad_bodies(encoded[0])
        mixed_bodies = [bad[(i // 10) % len(bad)] if i % 10 == 9 else good[i % len(good)] for i in range(600)]
        mixed = Load(args.port, mixed_bodies, 8).run(seconds=args.seconds)
        mixed["bad_requests"] = sum(1 for i in range(mixed["requests"]) if i % 10 == 9)
    finally:
        proc.terminate()
        proc.wait(60)
    at32 = next((r for r in levels if r["clients"] == 32), None)
    result = {
        "config": {"model": args.model, "precision": baseline["precision"], "batch_size": args.batch_size,
                   "clip_seconds": CLIP_SECONDS, "endpoint": "/v1/reward", "seconds_per_level": args.seconds},
        "model": {"id": baseline["model"], "checksum": baseline["checksum"]},
        "in_process": {k: round(v, 4) if isinstance(v, float) else v for k, v in baseline.items()
                       if k not in ("model", "checksum")},
        "levels": levels,
        "memory": {**rss, "requests": soak["requests"], "growth": round(growth, 4), "soak_errors": soak["errors"]},
        "mixed": mixed,
        "targets": {"ratio_cpu_at_32_ge_0.8": bool(at32 and at32["ratio_cpu"] >= 0.8),
                    "zero_errors": all(r["errors"] == 0 for r in levels) and soak["errors"] == 0,
                    "memory_growth_le_0.10": bool(growth <= 0.10), "mixed_all_expected": mixed["errors"] == 0},
    }
    from paraspeechclap.cli.common import print_table

    print_table(["clients", "req/s", "ratio", "ratio/CPU", "p50 ms", "p99 ms", "errors", "client CPU"],
                [[r["clients"], r["requests_per_s"], r["ratio"], r["ratio_cpu"], r["p50_ms"], r["p99_ms"], r["errors"],
                  r["client_cpu_share"]] for r in levels])
    print(f"memory: {rss} (growth {growth:+.1%}); mixed: {mixed['requests']} requests, "
          f"{mixed['errors']} with an unexpected status")
    write_results(json_path(args), result)


if __name__ == "__main__":
    main()
