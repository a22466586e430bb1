"""The web page of ``paraspeechclap serve`` in a real headless Chromium (Playwright).

One server (the ``lite`` model at fp32, with an index over a few example clips) and one browser serve the
whole module. Each test opens a fresh page and checks what it renders against the JSON API answering
the same request, that the page logs no console errors and that it requests nothing beyond the server.

Screenshots go to ``$PARASPEECHCLAP_ARTIFACTS`` (default: the test's tmp folder) as ``serve-page-*.png``;
with ``PARASPEECHCLAP_WRITE_SCREENSHOT=1`` the desktop one is also written to ``docs/images/serve-page.png``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="the page tests need playwright (pip install playwright)")
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)
if CHROMIUM is None:
    pytest.skip("the page tests need a chromium executable (apt-get install chromium)", allow_module_level=True)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CLIPS = ["synth_whispered.flac", "thorsten_angry.flac", "synth_fast.flac", "thorsten_sleepy.flac"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 30_000


# -- HTTP helpers (urllib only) ------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post_multipart(url: str, fields: list[tuple[str, str]], files: list[Path]) -> dict:
    """POST ``fields`` and ``files`` (as ``audio`` parts) as multipart/form-data; the JSON answer."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for path in files:
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="{path.name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n")
        parts.append(head.encode() + path.read_bytes() + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


# -- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("page_clips")
    for name in CLIPS:
        shutil.copy(EXAMPLES / name, folder / name)
    return [folder / name for name in CLIPS]


@pytest.fixture(scope="module")
def server(tmp_path_factory, clips):
    """The base URL of a running ``paraspeechclap serve --index`` (built by the CLI over ``clips``)."""
    work = tmp_path_factory.mktemp("page_server")
    index = work / "index"
    subprocess.run([sys.executable, "-m", "paraspeechclap", "index", str(clips[0].parent), "--out", str(index),
                    "--precision", "fp32"], cwd=work, check=True, capture_output=True, timeout=180)
    port = _free_port()
    log = open(work / "server.log", "wb")  # noqa: SIM115 - closed after the server stops
    proc = subprocess.Popen([sys.executable, "-m", "paraspeechclap", "serve", "--precision", "fp32",
                             "--port", str(port), "--index", str(index)], cwd=work, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited ({proc.returncode}): {(work / 'server.log').read_text()}")
            try:
                _get_json(f"{base}/healthz")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not answer /healthz: {(work / 'server.log').read_text()}")
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("PARASPEECHCLAP_ARTIFACTS") or tmp_path_factory.mktemp("page_artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Watched:
    """A page with what it logged: console errors, uncaught exceptions and every URL it requested."""

    def __init__(self, page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        page.on("request", lambda r: self.requests.append(r.url))
        page.set_default_timeout(TIMEOUT_MS)

    def assert_clean(self) -> None:
        assert self.errors == [], self.errors
        outside = [u for u in self.requests if urllib.parse.urlsplit(u).scheme not in ("data", "blob")
                   and urllib.parse.urlsplit(u).hostname != "127.0.0.1"]
        assert outside == [], f"requests that left 127.0.0.1: {outside}"


@pytest.fixture()
def open_page(browser, server):
    """``open_page(viewport)``: a fresh context and page on the server's ``/``, its model info loaded."""
    contexts = []

    def make(viewport=DESKTOP) -> Watched:
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        watched = Watched(context.new_page())
        watched.page.goto(f"{server}/")
        watched.page.wait_for_selector("#model-info:has-text('fp32')")
        return watched

    yield make
    for context in contexts:
        context.close()


# -- page actions --------------------------------------------------------------------------------------
def upload_clip(page, path: Path) -> None:
    page.set_input_files("#clip-file", str(path))
    page.wait_for_selector(f"#tags[data-clip='{path.name}'] [data-set]")
    page.wait_for_selector("#caption-results li")  # the captions are scored once the tags are in


def run_search(page, query: str) -> None:
    page.fill("#search-q", query)
    page.click("#search")
    page.wait_for_selector("#search-results li[data-row] audio")


def run_rerank(page, prompt: str, files: list[Path]) -> None:
    page.fill("#rerank-prompt", prompt)
    page.set_input_files("#rerank-files", [str(f) for f in files])
    page.click("#rerank")
    page.wait_for_selector("#rerank-results li[data-index]")


def rendered_sets(page) -> dict[str, tuple[str, str]]:
    """Each rendered attribute set -> (top label, top score text)."""
    return page.eval_on_selector_all("#tags [data-set]", """rows => Object.fromEntries(rows.map(r => [
        r.dataset.set,
        [r.querySelector('[data-role=top-label]').textContent, r.querySelector('[data-role=top-score]').textContent],
    ]))""")


def expected_sets(result: dict) -> dict[str, list[str]]:
    return {name: [s["top"], f"{s['labels'][0]['score']:.3f}"] for name, s in result["sets"].items()}


# -- tests ---------------------------------------------------------------------------------------------
def test_uploaded_clip_shows_the_apis_tags_and_caption_scores(open_page, server, clips):
    w = open_page()
    page = w.page
    upload_clip(page, clips[0])
    api = _post_multipart(f"{server}/v1/classify", [], [clips[0]])
    assert rendered_sets(page) == expected_sets(api["results"][0])
    defaults = _get_json(f"{server}/v1/models")["models"][0]["default_attribute_sets"]
    assert list(rendered_sets(page)) == defaults
    assert page.get_attribute("#clip-player", "src").startswith("blob:")
    probability = page.text_content(f"[data-set='{defaults[0]}'] [data-role=top-probability]")
    assert probability == f"{100 * api['results'][0]['sets'][defaults[0]]['labels'][0]['probability']:.1f}%"

    captions = [line.strip() for line in page.input_value("#captions").splitlines() if line.strip()]
    scores = _post_multipart(f"{server}/v1/score", [("captions", c) for c in captions], [clips[0]])["scores"][0]
    shown = page.eval_on_selector_all("#caption-results [data-role=caption-score]", "els => els.map(e => e.textContent)")
    assert shown == [f"{s:.3f}" for s in scores]
    assert page.is_hidden("#status")
    w.assert_clean()


def test_search_results_play_from_the_server(open_page, server):
    w = open_page()
    page = w.page
    assert page.is_visible("#search-panel")
    run_search(page, "a person whispering")
    api = _get_json(f"{server}/v1/search?" + urllib.parse.urlencode({"q": "a person whispering", "k": 5}))
    rows = page.eval_on_selector_all("#search-results li[data-row]", "els => els.map(e => e.dataset.row)")
    assert rows == [str(r["row"]) for r in api["results"]]
    sources = page.eval_on_selector_all("#search-results audio", "els => els.map(e => e.src)")
    assert len(sources) == len(api["results"])
    for src in sources:
        assert urllib.parse.urlsplit(src).hostname == "127.0.0.1"
        response = page.request.get(src)
        assert response.status == 200, src
        assert response.headers["content-type"].startswith("audio/")
    w.assert_clean()


def test_best_of_n_ranks_as_the_api_does(open_page, server, clips):
    w = open_page()
    page = w.page
    prompt = "an angry man shouting"
    run_rerank(page, prompt, clips)
    api = _post_multipart(f"{server}/v1/rerank", [("prompt", prompt)], clips)
    shown = page.eval_on_selector_all("#rerank-results li[data-index]", """els => els.map(e => [
        e.querySelector('[data-role=clip]').textContent, e.querySelector('[data-role=score]').textContent])""")
    assert shown == [[r["clip"], f"{r['score']:.3f}"] for r in api["ranking"]]
    assert page.get_attribute("#rerank-results li.best", "data-index") == str(api["best"])
    w.assert_clean()


def test_recording_with_the_fake_microphone_is_tagged(open_page):
    w = open_page()
    page = w.page
    page.click("#record")
    page.wait_for_selector("#record[aria-pressed='true']")
    page.wait_for_timeout(1500)
    page.click("#record")
    page.wait_for_selector("#tags[data-clip^='recording-'] [data-set]")
    assert page.text_content("#clip-name").endswith(".wav")
    assert page.get_attribute("#clip-player", "src").startswith("blob:")
    for label in page.eval_on_selector_all("[data-role=top-label]", "els => els.map(e => e.textContent)"):
        assert label.strip()
    assert page.is_hidden("#status")
    w.assert_clean()


@pytest.mark.parametrize("name,viewport", [("desktop", DESKTOP), ("phone", PHONE)])
def test_layout_fits_the_screen(open_page, clips, artifacts, name, viewport):
    w = open_page(viewport)
    page = w.page
    upload_clip(page, clips[0])
    run_search(page, "a whispered voice")
    run_rerank(page, "an angry man shouting", clips[:3])
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"horizontal scroll at {viewport}: {widths}"
    page.screenshot(path=str(artifacts / f"serve-page-{name}.png"), full_page=True)
    if name == "desktop" and os.environ.get("PARASPEECHCLAP_WRITE_SCREENSHOT") == "1":
        (ROOT / "docs" / "images").mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ROOT / "docs" / "images" / "serve-page.png"), full_page=True)
    w.assert_clean()
