"""``paraspeechclap serve`` against a real server process: every endpoint, limits, paths, batching, client.

Server ``lite``: the embedded model in fp32 with an index and an allow-listed folder; its numbers are
compared with the same model in this process. Server ``guarded``: the tiny test model with an API key and
small limits (the limits and access tests).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from serve_helpers import post_files, post_json, request, running_server  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CLIPS = ["synth_deep.flac", "synth_fast.flac", "synth_whispered.flac", "thorsten_angry.flac", "synth_slow.flac"]
pytestmark = pytest.mark.slow


def _b64(path: Path) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


def _wav_bytes(x: np.ndarray, sr: int = 16000, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def model():
    from paraspeechclap import load_model

    return load_model("lite", precision="fp32")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """allowed/ (the --allow-paths folder, with the clips and a symlink out), outside/, an index."""
    root = tmp_path_factory.mktemp("serve")
    allowed, outside = root / "allowed", root / "outside"
    allowed.mkdir()
    outside.mkdir()
    for name in CLIPS:
        shutil.copy(EXAMPLES / name, allowed / name)
    shutil.copy(EXAMPLES / "synth_loud.flac", outside / "secret.flac")
    (allowed / "link.flac").symlink_to(outside / "secret.flac")
    index = root / "index"
    subprocess.run([sys.executable, "-m", "paraspeechclap", "index", str(EXAMPLES), "--out", str(index),
                    "--precision", "fp32"], check=True, capture_output=True)
    return root


@pytest.fixture(scope="module")
def lite(work):
    args = ["--precision", "fp32", "--index", str(work / "index"), "--allow-paths", str(work / "allowed")]
    with running_server(args, work) as (url, _):
        yield url


@pytest.fixture(scope="module")
def guarded(work, tiny_dir):
    args = ["--model", str(tiny_dir), "--precision", "fp32", "--api-key-env", "PSC_TEST_KEY", "--max-clips", "3",
            "--max-clip-seconds", "4", "--max-clip-mb", "0.2", "--max-captions", "4"]
    with running_server(args, work, env={"PSC_TEST_KEY": "s3cret"}) as (url, _):
        yield url


KEY = {"Authorization": "Bearer s3cret"}


# -- endpoints and their numbers ----------------------------------------------------------------------
def test_models_and_health_carry_the_model(lite, model):
    status, body = 200, json.loads(request("GET", lite + "/healthz")[2])
    assert body["status"] == "ok"
    expect = {"id": model.model_id, "checksum": model.checksum, "precision": "fp32"}
    assert body["model"] == expect
    status, _, raw = request("GET", lite + "/v1/models")
    info = json.loads(raw)
    assert status == 200 and info["model"] == expect
    entry = info["models"][0]
    assert entry["embed_dim"] == model.config.embed_dim and entry["index"]["rows"] == len(list(EXAMPLES.glob("*.flac")))
    assert entry["limits"]["max_clips"] == 32 and entry["limits"]["max_clip_seconds"] == 30
    assert "emotion8" in entry["default_attribute_sets"]


def test_openapi_docs_list_every_endpoint(lite):
    assert request("GET", lite + "/docs")[0] == 200
    spec = json.loads(request("GET", lite + "/openapi.json")[2])
    for path in ("/v1/score", "/v1/classify", "/v1/rerank", "/v1/reward", "/v1/embed", "/v1/search", "/v1/models",
                 "/healthz", "/metrics"):
        assert path in spec["paths"], path
    body = spec["paths"]["/v1/reward"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)


def test_score_equals_the_model_multipart_and_json(lite, model):
    paths = [EXAMPLES / c for c in CLIPS[:3]]
    captions = ["A man speaks in a deep voice.", "Someone whispers.", "A fast talker."]
    ref = model.score([str(p) for p in paths], captions)
    status, body = post_files(lite + "/v1/score", paths, [("captions", c) for c in captions])
    assert status == 200, body
    np.testing.assert_allclose(np.array(body["scores"]), ref, atol=1e-5)
    assert body["clips"] == [p.name for p in paths] and body["model"]["checksum"] == model.checksum
    status, body2 = post_json(lite + "/v1/score", {"audio": [_b64(p) for p in paths], "captions": captions})
    assert status == 200 and np.allclose(body2["scores"], body["scores"], atol=1e-6)


def test_embed_equals_the_model(lite, model):
    status, body = post_json(lite + "/v1/embed", {"audio": [{"data": _b64(EXAMPLES / CLIPS[0]), "name": "a"}],
                                                 "captions": ["A calm voice."]})
    assert status == 200 and body["clips"] == ["a"] and body["dim"] == model.config.embed_dim
    np.testing.assert_allclose(body["audio"], model.embed_audio([str(EXAMPLES / CLIPS[0])]), atol=1e-5)
    np.testing.assert_allclose(body["text"], model.embed_text(["A calm voice."]), atol=1e-6)


def test_classify_candidates_and_attribute_sets(lite, model):
    path = EXAMPLES / "synth_whispered.flac"
    cands = ["whispered", "angry", "happy"]
    ref = model.classify([str(path)], cands)[0]
    status, body = post_files(lite + "/v1/classify", [path], [("candidates", c) for c in cands])
    assert status == 200, body
    got = body["results"][0]["sets"]["candidates"]["labels"]
    assert [g["label"] for g in got] == [r[0] for r in ref]
    np.testing.assert_allclose([g["score"] for g in got], [r[1] for r in ref], atol=1e-5)
    assert abs(sum(g["probability"] for g in got) - 1) < 1e-9

    from paraspeechclap.annotate.labels import build_scorers
    from paraspeechclap.calibration import model_logit_scale, shipped_calibration

    status, body = post_files(lite + "/v1/classify", [path], [("attribute_sets", "whisper"),
                                                              ("attribute_sets", "pitch_level")])
    assert status == 200 and list(body["results"][0]["sets"]) == ["whisper", "pitch_level"]
    emb = model.embed_audio([str(path)])
    scorers = build_scorers(model, ["whisper", "pitch_level"], shipped_calibration("lite", model))
    for scorer in scorers:
        res = body["results"][0]["sets"][scorer.aset.name]
        probs = scorer.probabilities(emb, model_logit_scale(model))[0]
        assert res["top"] == scorer.aset.candidates[int(np.argmax(probs))]
        fitted = shipped_calibration("lite", model).metrics[scorer.aset.name].get("fitted", True)
        assert res["calibrated"] == fitted and res["temperature"] == pytest.approx(scorer.temperature)
        by_label = {e["label"]: e["probability"] for e in res["labels"]}
        np.testing.assert_allclose([by_label[c] for c in scorer.aset.candidates], probs, atol=1e-5)


def test_rerank_equals_the_rerank_api_and_silent_is_last(lite, model):
    from paraspeechclap.reranking import rerank

    paths = [EXAMPLES / c for c in CLIPS[:4]]
    prompt = "A person whispering."
    ref = rerank(model, prompt, [str(p) for p in paths])
    status, body = post_files(lite + "/v1/rerank", paths, [("prompt", prompt)])
    assert status == 200, body
    assert [paths[r["index"]] for r in body["ranking"]] == [Path(c) for c, _ in ref]
    np.testing.assert_allclose([r["score"] for r in body["ranking"]], [s for _, s in ref], atol=1e-5)
    # a silent candidate is ranked last with a null score, as `rerank` does, not refused
    silent = _wav_bytes(np.zeros(16000, np.float32))
    status, body = post_json(lite + "/v1/rerank", {"prompt": prompt, "audio": [_b64(paths[0]), base64.b64encode(
        silent).decode()]})
    assert status == 200 and body["best"] == 0 and body["scores"][1] is None
    assert body["ranking"][-1]["index"] == 1 and body["issues"][0]["kind"] == "silent"
    # reward settings must be finite: float() would read "inf" and "nan", and Python's JSON Infinity and NaN
    two = [_b64(paths[0]), _b64(paths[1])]
    for fields, words in [({"wer": [0.1, 0.2], "wer_threshold": "inf"}, "'wer_threshold' must be a finite"),
                          ({"wer": [0.1, 0.2], "wer_weight": "nan"}, "'wer_weight' must be a finite"),
                          ({"wer": [0.1, "nan"], "wer_weight": 0.5}, "'wer' must be a list of finite")]:
        status, body = post_json(lite + "/v1/rerank", {"prompt": prompt, "audio": two, **fields})
        assert status == 400 and words in body["error"], body
    status, body = post_json(lite + "/v1/reward", {"prompts": [prompt, prompt], "audio": two, "quality_gate": True,
                                                  "gate_reward": "-inf"})
    assert status == 400 and "'gate_reward' must be a finite" in body["error"], body


def test_reward_is_the_cosine_with_tag_agreement(lite, model):
    paths = [EXAMPLES / "synth_slow.flac", EXAMPLES / "synth_whispered.flac"]
    prompts = ["A man speaking slowly and sadly.", "Someone whispering at a low volume."]
    status, body = post_json(lite + "/v1/reward", {"prompts": prompts, "audio": [_b64(p) for p in paths],
                                                  "attribute_sets": ["speaking_rate", "whisper", "gender"]})
    assert status == 200, body
    ref = np.sum(model.embed_audio([str(p) for p in paths]) * model.embed_text(prompts), axis=1)
    np.testing.assert_allclose(body["rewards"], ref, atol=1e-5)
    assert body["tags"][0] == {"speaking_rate": "slow", "whisper": None, "gender": "male"}
    assert body["tags"][1]["whisper"] == "whispered" and body["agreement"]["speaking_rate"][1] is None
    _, cls = post_files(lite + "/v1/classify", [paths[0]], [("attribute_sets", "speaking_rate")])
    slow = {e["label"]: e["probability"] for e in cls["results"][0]["sets"]["speaking_rate"]["labels"]}["slow"]
    assert body["agreement"]["speaking_rate"][0] == pytest.approx(slow, abs=1e-6)


def test_reward_bad_clip_is_named_or_skipped(lite):
    good = _b64(EXAMPLES / CLIPS[0])
    bad = base64.b64encode(b"not audio at all").decode()
    audio = [good, {"data": bad, "name": "x.wav"}]
    status, body = post_json(lite + "/v1/reward", {"prompts": ["a", "b"], "audio": audio})
    assert status == 422 and body["error"].startswith("x.wav: cannot decode audio")
    status, body = post_json(lite + "/v1/reward", {"prompts": ["a", "b"], "audio": audio, "skip_bad": True})
    assert status == 200 and body["rewards"][1] is None and isinstance(body["rewards"][0], float)
    assert body["errors"][0]["clip"] == "x.wav" and body["errors"][0]["index"] == 1


def test_search_links_audio_the_server_streams(lite, model):
    status, _, raw = request("GET", lite + "/v1/search?q=" + "a%20person%20whispering&k=3")
    body = json.loads(raw)
    assert status == 200 and len(body["results"]) == 3
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    top = body["results"][0]
    files = sorted(EXAMPLES.glob("*.flac"))
    sims = model.embed_audio([str(f) for f in files]) @ model.embed_text(["a person whispering"])[0]
    assert Path(top["path"]).name == files[int(np.argmax(sims))].name
    status, headers, audio = request("GET", lite + top["audio_url"])
    assert status == 200 and audio == (EXAMPLES / Path(top["path"]).name).read_bytes()
    assert request("GET", lite + "/v1/audio/999")[0] == 404
    assert request("HEAD", lite + top["audio_url"])[0] == 200
    assert json.loads(request("GET", lite + "/v1/search?q=%20")[2])["error"] == "query 'q' is empty"


# -- paths --------------------------------------------------------------------------------------------
def test_paths_only_inside_the_allowed_folder(lite, work, model):
    allowed = work / "allowed"
    status, body = post_json(lite + "/v1/score", {"audio": [{"path": CLIPS[0]}, {"path": str(allowed / CLIPS[1])}],
                                                 "captions": ["x y"]})
    assert status == 200, body
    np.testing.assert_allclose(body["scores"], model.score([str(allowed / c) for c in CLIPS[:2]], ["x y"]), atol=1e-5)
    for bad, code in [("../outside/secret.flac", 403), (str(work / "outside" / "secret.flac"), 403),
                      ("link.flac", 403), ("missing.flac", 404)]:
        status, body = post_json(lite + "/v1/score", {"audio": [{"path": bad}], "captions": ["x"]})
        assert status == code and bad in body["error"], (bad, body)


def test_paths_refused_without_allow_paths(guarded):
    audio = [{"path": str(EXAMPLES / CLIPS[0])}]
    status, body = post_json(guarded + "/v1/score", {"audio": audio, "captions": ["x"]}, KEY)
    assert status == 403 and "--allow-paths" in body["error"]


# -- limits and bad input -----------------------------------------------------------------------------
def _tone(seconds: float, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)


@pytest.mark.parametrize("payload, code, words", [
    ({"audio": [], "captions": ["x"]}, 400, "no audio"),
    ({"audio": ["TONE"] * 4, "captions": ["x"]}, 400, "too many items in 'audio'"),
    ({"audio": ["TONE"], "captions": ["x"] * 5}, 400, "too many items in 'captions'"),
    ({"audio": ["TONE"], "captions": ["x", "  "]}, 400, "captions[1] is empty"),
    ({"audio": ["TONE"]}, 400, "missing field 'captions'"),
    ({"audio": ["LONG"], "captions": ["x"]}, 413, "the limit is 4 s"),
    ({"audio": ["BIG"], "captions": ["x"]}, 413, "over the limit of 0.2 MB"),
    ({"audio": ["SILENT"], "captions": ["x"]}, 422, "digital silence"),
    ({"audio": ["GARBAGE"], "captions": ["x"]}, 422, "cannot decode audio"),
    ({"audio": ["%%%"], "captions": ["x"]}, 400, "not valid base64"),
])
def test_limits_and_bad_input_get_4xx_json(guarded, payload, code, words):
    clips = {"TONE": _wav_bytes(_tone(1.0)), "LONG": _wav_bytes(_tone(5.0, 8000), 8000),
             "BIG": _wav_bytes(np.random.default_rng(0).uniform(-1, 1, 150_000).astype(np.float32), fmt="WAV"),
             "SILENT": _wav_bytes(np.zeros(16000, np.float32)), "GARBAGE": b"RIFF....garbage"}
    audio = [base64.b64encode(clips[a]).decode() if a in clips else a for a in payload["audio"]]
    status, body = post_json(guarded + "/v1/score", {**payload, "audio": audio}, KEY)
    assert status == code and words in body["error"], body
    assert set(body) == {"error"}


def test_malformed_requests(guarded):
    for body, ctype, code in [(b"{not json", "application/json", 400), (b"[1, 2]", "application/json", 400),
                              (b"x", "text/plain", 415)]:
        status, _, raw = request("POST", guarded + "/v1/score", body, {"Content-Type": ctype, **KEY})
        assert status == code and "error" in json.loads(raw)
    assert _announced_body(guarded, 4_000_000) == 413  # refused from its Content-Length, before it is read
    status, body = post_json(guarded + "/v1/classify", {"audio": [base64.b64encode(_wav_bytes(_tone(1))).decode()],
                                                     "attribute_sets": ["nope"]}, KEY)
    assert status == 404 and "unknown attribute set 'nope'" in body["error"]
    tone = base64.b64encode(_wav_bytes(_tone(1))).decode()
    status, body = post_json(guarded + "/v1/classify", {"audio": [tone], "candidates": ["a", "b", "a"]}, KEY)
    assert status == 400 and body["error"] == "duplicate candidates: a"
    status, body = post_json(guarded + "/v1/classify", {"audio": [tone], "candidates": ["a"], "template": "no slot"},
                             KEY)
    assert status == 400 and "must contain '{}'" in body["error"]
    assert json.loads(request("GET", guarded + "/v1/nothing", headers=KEY)[2]) == {"error": "Not Found"}
    status, body = post_json(guarded + "/v1/reward", {"prompts": ["a"], "audio": []}, KEY)
    assert status == 400
    assert json.loads(request("GET", guarded + "/v1/search?q=x", headers=KEY)[2])["error"].startswith("no index")
    assert json.loads(request("GET", guarded + "/healthz")[2])["status"] == "ok"  # still up after all of it


def _announced_body(url: str, length: int) -> int:
    """Status of a POST that announces ``length`` bytes (and sends only a few: the server must not wait)."""
    import http.client
    from urllib.parse import urlparse

    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.putrequest("POST", "/v1/score")
    for k, v in {"Content-Type": "application/json", "Content-Length": str(length), **KEY}.items():
        conn.putheader(k, v)
    conn.endheaders()
    conn.send(b"{}")
    status = conn.getresponse().status
    conn.close()
    return status


def test_api_key(guarded):
    tone = base64.b64encode(_wav_bytes(_tone(1))).decode()
    assert post_json(guarded + "/v1/score", {"audio": [tone], "captions": ["x"]})[0] == 401
    assert post_json(guarded + "/v1/score", {"audio": [tone], "captions": ["x"]}, {"Authorization": "Bearer no"})[0] == 401
    assert post_json(guarded + "/v1/score", {"audio": [tone], "captions": ["x"]}, {"X-API-Key": "s3cret"})[0] == 200
    assert request("GET", guarded + "/metrics")[0] == 401
    assert request("GET", guarded + "/healthz")[0] == 200 and request("GET", guarded + "/")[0] == 200


# -- batching and concurrency -------------------------------------------------------------------------
def test_concurrent_requests_are_batched_and_equal_one_at_a_time(lite):
    files = sorted(EXAMPLES.glob("*.flac"))
    caption = ["A person is speaking."]
    alone = []
    for f in files:  # one request at a time: batches of one request's single clip
        alone.append(post_files(lite + "/v1/score", [f], [("captions", caption[0])])[1]["scores"][0][0])
    before = _batches(lite)
    results: dict[int, float] = {}
    errors: list[str] = []

    def client(k: int) -> None:
        f = files[k % len(files)]
        status, body = post_files(lite + "/v1/score", [f], [("captions", caption[0])])
        if status != 200:
            errors.append(str(body))
        else:
            results[k] = body["scores"][0][0]

    threads = [threading.Thread(target=client, args=(k,)) for k in range(3 * len(files))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k, score in results.items():
        assert abs(score - alone[k % len(files)]) < 1e-5
    after = _batches(lite)
    batches, clips = after[0] - before[0], after[1] - before[1]
    assert clips == len(threads) and batches < clips  # some batches held clips of several requests


def _batches(url: str) -> tuple[int, int]:
    text = request("GET", url + "/metrics")[2].decode()
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if line and line[0] != "#"}
    return int(values["paraspeechclap_batch_size_count"]), int(values["paraspeechclap_batch_size_sum"])


def test_metrics_count_requests_and_prompt_cache(lite):
    for _ in range(2):
        post_files(lite + "/v1/score", [EXAMPLES / CLIPS[0]], [("captions", "A unique cached prompt.")])
    text = request("GET", lite + "/metrics")[2].decode()
    assert 'paraspeechclap_requests_total{endpoint="/v1/score",status="200"}' in text
    hits = [line for line in text.splitlines() if line.startswith('paraspeechclap_prompt_cache_total{result="hit"}')]
    assert hits and float(hits[0].split()[1]) >= 1


# -- the client ---------------------------------------------------------------------------------------
def test_client_remote_equals_in_process(lite, model):
    from paraspeechclap.client import StyleReward
    from paraspeechclap.errors import AudioError

    rng = np.random.default_rng(1)
    prompts = ["A person whispering.", "A deep male voice.", "Someone speaking fast.", "A calm voice."]
    audios = [str(EXAMPLES / "synth_whispered.flac"), str(EXAMPLES / "synth_deep.flac"),
              (0.1 * rng.standard_normal(22050)).astype(np.float32), str(EXAMPLES / "synth_fast.flac")]
    remote, local = StyleReward(lite, batch_size=3), StyleReward(model)
    r, loc = remote(prompts, audios, sample_rate=22050), local(prompts, audios, sample_rate=22050)
    assert len(r) == 4 and np.allclose(r, loc, atol=1e-5)
    # TRL's call shape: chat prompts and completions keywords, extra columns ignored
    chats = [[{"role": "user", "content": p}] for p in prompts]
    trl = remote(prompts=chats, completions=audios, sample_rate=22050, completion_ids=None, other=[1, 2, 3, 4])
    assert np.allclose(trl, r, atol=1e-7)
    bad = str(EXAMPLES / "README.md")
    for rew in (remote, local):
        with pytest.raises(AudioError, match="README.md"):
            rew(prompts[:2], [audios[0], bad])
    skipping = StyleReward(lite, bad_reward=-1.0)
    assert skipping(prompts[:2], [bad, audios[0]])[0] == -1.0


def test_client_retries_then_gives_up(tmp_path):
    import http.server

    from paraspeechclap.client import ServiceError, StyleReward

    calls = []

    class Flaky(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers["Content-Length"]))
            calls.append(self.path)
            ok = len(calls) >= 3
            body = json.dumps({"rewards": [0.5], "errors": []} if ok else {"error": "busy"}).encode()
            self.send_response(200 if ok else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    clip = str(EXAMPLES / CLIPS[0])
    assert StyleReward(url, retries=3, backoff=0.01)(["x"], [clip]) == [0.5] and len(calls) == 3
    calls.clear()
    with pytest.raises(ServiceError, match="503 busy"):
        StyleReward(url, retries=1, backoff=0.01)(["x"], [clip])
    server.shutdown()
    server.server_close()
    with pytest.raises(ServiceError, match="unreachable after 2 tries"):
        StyleReward(url, retries=1, backoff=0.01, timeout=2)(["x"], [clip])


# -- shutdown -----------------------------------------------------------------------------------------
def test_graceful_shutdown_finishes_requests_in_flight(work, tiny_dir):
    """SIGTERM while a request waits in the batcher: it is answered, then the process ends cleanly."""
    args = ["--model", str(tiny_dir), "--precision", "fp32", "--max-wait-ms", "2000", "--batch-size", "64"]
    with running_server(args, work) as (url, proc):
        out: dict[str, object] = {}

        def send() -> None:
            out["result"] = post_json(url + "/v1/score", {"audio": [base64.b64encode(_wav_bytes(_tone(1))).decode()],
                                                         "captions": ["x"]})

        t = threading.Thread(target=send)
        t.start()
        time.sleep(0.7)  # the request is waiting for its batch to fill (up to 2 s)
        proc.send_signal(signal.SIGTERM)
        t.join(30)
        assert out["result"][0] == 200 and len(out["result"][1]["scores"]) == 1  # type: ignore[index]
        # uvicorn re-raises the signal it caught once shutdown is done (systemd counts that as clean)
        assert proc.wait(30) in (0, -signal.SIGTERM)
        assert "Traceback" not in (work / f"serve-{url.rsplit(':', 1)[1]}.log").read_text()


def test_serve_cli_errors_are_one_line(tmp_path):
    env = {**os.environ}
    env.pop("PSC_UNSET_VAR", None)
    for args, words in [(["--api-key-env", "PSC_UNSET_VAR"], "PSC_UNSET_VAR"),
                        (["--allow-paths", str(tmp_path / "nope")], "not a folder"),
                        (["--attribute-sets", "nope"], "nope"),
                        (["--max-clip-mb", "0"], "above 0"), (["--max-clip-seconds", "inf"], "finite"),
                        (["--max-clip-seconds", "nan"], "finite")]:
        res = subprocess.run([sys.executable, "-m", "paraspeechclap", "serve", *args], capture_output=True,
                             text=True, env=env, timeout=120)
        assert res.returncode != 0 and words in res.stderr and "Traceback" not in res.stderr, res.stderr


# -- the quality gate (reward gaming guard) -----------------------------------------------------------
def _noisy(path: Path, snr_db: float, seed: int = 0) -> np.ndarray:
    from paraspeechclap.audio import load_audio

    x = load_audio(str(path))
    noise = np.random.default_rng(seed).standard_normal(len(x))
    scale = np.sqrt(np.mean(x.astype(np.float64) ** 2) / 10 ** (snr_db / 10))
    return (x + scale * noise).astype(np.float32)


def test_quality_gate_on_reward_rerank_and_client(lite, model):
    from paraspeechclap.client import StyleReward
    from paraspeechclap.errors import InputError
    from paraspeechclap.reranking import QualityGate, rerank

    clean = EXAMPLES / "thorsten_angry.flac"
    noisy = _noisy(clean, 0.0)
    audio = [_b64(clean), base64.b64encode(_wav_bytes(noisy)).decode()]
    prompts = ["An angry man shouting."] * 2
    status, body = post_json(lite + "/v1/reward", {"prompts": prompts, "audio": audio, "quality_gate": True,
                                                  "gate_reward": -1.0})
    assert status == 200, body
    assert body["quality"][0]["ok"] and not body["quality"][1]["ok"] and body["quality"][1]["reasons"] == ["snr"]
    assert body["rewards"][1] == -1.0
    from paraspeechclap.audio import load_audio

    trimmed = QualityGate().prepare(load_audio(str(clean)))  # a passing clip's reward: its trimmed cosine
    ref = float(model.embed_audio([trimmed])[0] @ model.embed_text(prompts[:1])[0])
    assert body["rewards"][0] == pytest.approx(ref, abs=1e-5)
    # the clients apply the same gate, remote and in-process
    for rew in (StyleReward(lite, gate_reward=-1.0), StyleReward(model, gate_reward=-1.0)):
        got = rew(prompts, [str(clean), noisy])
        assert got[1] == -1.0 and got[0] == pytest.approx(ref, abs=1e-5)
    # rerank: the noisy copy ranks after the clean one whatever its cosine, in the service and the library
    status, body = post_json(lite + "/v1/rerank", {"prompt": prompts[0], "audio": audio[::-1], "quality_gate": True})
    assert status == 200 and body["best"] == 1 and body["quality"][0]["reasons"] == ["snr"]
    ranked = rerank(model, prompts[0], [noisy, str(clean)], quality_gate=True)
    assert isinstance(ranked[0][0], str) and ranked[0][1] == pytest.approx(body["scores"][1], abs=1e-5)
    # a stricter threshold fails the clean clip too (its blind SNR is far below 60 dB)
    status, body = post_json(lite + "/v1/reward", {"prompts": prompts, "audio": audio, "quality_gate": True,
                                                  "gate_min_snr_db": 60})
    assert status == 200 and [q["reasons"] for q in body["quality"]] == [["snr"], ["snr"]], body
    for fields, words in [({"gate_min_snr_db": 12}, "send quality_gate true"),
                          ({"quality_gate": True, "gate_min_snr_db": "inf"}, "finite"),
                          ({"quality_gate": True, "gate_min_snr_db": "loud"}, "must be a number")]:
        status, body = post_json(lite + "/v1/rerank", {"prompt": prompts[0], "audio": audio, **fields})
        assert status == 400 and words in body["error"] and "gate_min_snr_db" in body["error"], body
    # the clients take the same threshold, remote and in-process
    for rew in (StyleReward(lite, gate_reward=-1.0, gate_min_snr_db=60), StyleReward(model, gate_reward=-1.0,
                                                                                     gate_min_snr_db=60)):
        assert rew(prompts, [str(clean), noisy]) == [-1.0, -1.0]
    with pytest.raises(InputError, match="set gate_reward too"):
        StyleReward(model, gate_min_snr_db=12)
    with pytest.raises(InputError, match="finite"):
        StyleReward(model, gate_reward=-1.0, gate_min_snr_db=float("nan"))
