"""The service's pieces without a server: the dynamic batcher, prompt tags, request fields, paths."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from paraspeechclap.serve.batcher import DynamicBatcher
from paraspeechclap.serve.inputs import HTTPProblem, allowed_path, number_field, text_list
from paraspeechclap.serve.settings import ServeSettings
from paraspeechclap.serve.tags import prompt_tags


class Recorder:
    """``run_batch`` that doubles its items and records each batch (on the worker thread)."""

    def __init__(self, fail_on: object = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on
        self.threads: set[str] = set()

    def __call__(self, items: list[int]) -> list[int]:
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(items))
        if self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        return [2 * i for i in items]


def _run(coro):
    return asyncio.run(coro)


def test_concurrent_requests_share_batches_and_get_their_own_results():
    rec = Recorder()

    async def main():
        b = DynamicBatcher(rec, max_batch=4, max_wait_ms=50, executor=ThreadPoolExecutor(1, "model"))
        b.start()
        requests = [list(range(10 * r, 10 * r + 3)) for r in range(6)]  # 6 requests x 3 items
        out = await asyncio.gather(*(b.submit(items) for items in requests))
        await b.stop()
        return requests, out

    requests, out = _run(main())
    assert out == [[2 * i for i in items] for items in requests]  # each request gets its own results in order
    sizes = [len(x) for x in rec.batches]
    assert max(sizes) <= 4 and sum(sizes) == 18 and len(sizes) < 18
    assert any(len({i // 10 for i in batch}) > 1 for batch in rec.batches)  # items of several requests together
    assert rec.threads == {"model_0"}  # every batch on the one model thread


def test_a_lone_item_does_not_wait_for_a_full_batch():
    rec = Recorder()

    async def main():
        b = DynamicBatcher(rec, max_batch=64, max_wait_ms=1, executor=ThreadPoolExecutor(1))
        b.start()
        res = await asyncio.wait_for(b.submit([7]), timeout=5)
        await b.stop()
        return res

    assert _run(main()) == [14] and rec.batches == [[7]]


def test_a_failing_batch_fails_its_requests_only_and_the_loop_goes_on():
    rec = Recorder(fail_on=99)

    async def main():
        b = DynamicBatcher(rec, max_batch=1, max_wait_ms=0, executor=ThreadPoolExecutor(1))
        b.start()
        bad = asyncio.ensure_future(b.submit([99]))
        good = asyncio.ensure_future(b.submit([1]))
        done = await asyncio.gather(bad, good, return_exceptions=True)
        after = await b.submit([2])
        await b.stop()
        return done, after

    (bad, good), after = _run(main())
    assert isinstance(bad, ValueError) and good == [2] and after == [4]


def test_a_cancelled_request_drops_out_and_stop_fails_what_waits():
    rec = Recorder()

    async def main():
        ex = ThreadPoolExecutor(1)
        b = DynamicBatcher(rec, max_batch=8, max_wait_ms=200, executor=ex)
        b.start()
        t = asyncio.ensure_future(b.submit([5, 6]))
        await asyncio.sleep(0.01)
        t.cancel()  # the client went away while its items waited for the batch
        kept = await b.submit([1])
        b2 = DynamicBatcher(rec, max_batch=8, max_wait_ms=0, executor=ex)
        b2._queue = asyncio.Queue()  # started without a loop: its items only wait
        pending = asyncio.ensure_future(b2.submit([3]))
        await asyncio.sleep(0)
        await b2.stop()
        await b.stop()
        return kept, await asyncio.gather(pending, return_exceptions=True)

    kept, (stopped,) = _run(main())
    assert kept == [2] and all(5 not in batch for batch in rec.batches)
    assert isinstance(stopped, RuntimeError) and "shutting down" in str(stopped)


def test_submit_before_start_and_bad_batch_size():
    with pytest.raises(ValueError, match="max_batch"):
        DynamicBatcher(lambda x: x, max_batch=0, max_wait_ms=1, executor=ThreadPoolExecutor(1))
    b = DynamicBatcher(lambda x: x, max_batch=1, max_wait_ms=1, executor=ThreadPoolExecutor(1))
    with pytest.raises(RuntimeError, match="not started"):
        _run(b.submit([1]))


# -- prompt tags ---------------------------------------------------------------------------------------
SETS = ["emotion8", "gender", "pitch_level", "speaking_rate", "loudness", "voice_quality", "whisper"]


@pytest.mark.parametrize("prompt, expect", [
    ("A deep, raspy voice, speaking slowly and sadly.",
     {"pitch_level": "deep", "voice_quality": "raspy", "speaking_rate": "slow", "emotion8": "saddened"}),
    ("A woman whispering at a low volume.",  # "low" belongs to the loudness phrase, not to pitch
     {"gender": "female", "loudness": "soft", "whisper": "whispered", "voice_quality": "whispered"}),
    ("A man speaks ANGRILY and fast in a high-pitched voice.",
     {"gender": "male", "emotion8": "angry", "speaking_rate": "fast", "pitch_level": "high-pitched"}),
    ("Calm narration of a story.", {}),
    ("A happy and sad voice.", {}),  # two emotions named equally: no tag rather than a guess
    ("A manic voice", {}),  # whole words only
])
def test_prompt_tags(prompt, expect):
    got = prompt_tags(prompt, SETS)
    assert set(got) == set(SETS)
    assert {k: v for k, v in got.items() if v is not None} == expect


# -- fields and paths ----------------------------------------------------------------------------------
def test_number_field_takes_finite_numbers_only():
    assert number_field({"w": "0.25"}, "w", None) == 0.25 and number_field({"w": 3}, "w", None) == 3.0
    assert number_field({}, "w", 1.5) == 1.5 and number_field({"w": ""}, "w", None) is None
    # float() reads all of these; a threshold or weight of infinity or NaN would silently change every ranking
    for bad in ("inf", "-Infinity", "nan", float("inf"), float("nan")):
        with pytest.raises(HTTPProblem, match="field 'w' must be a finite number"):
            number_field({"w": bad}, "w", None)
    with pytest.raises(HTTPProblem, match="field 'w' must be a number"):
        number_field({"w": "loud"}, "w", None)


def test_text_list_checks():
    s = ServeSettings(max_captions=2)
    assert text_list({"captions": "one"}, "captions", s) == ["one"]
    assert text_list({}, "captions", s, required=False) == []
    for fields, words in [({}, "missing field 'captions'"), ({"captions": ["a", "b", "c"]}, "too many"),
                          ({"captions": ["a", ""]}, "captions[1] is empty"), ({"captions": 3}, "list of strings")]:
        with pytest.raises(HTTPProblem, match=words.replace("[", r"\[").replace("]", r"\]")) as e:
            text_list(fields, "captions", s)
        assert e.value.status == 400


def test_allowed_path(tmp_path):
    root, out = tmp_path / "root", tmp_path / "out"
    (root / "sub").mkdir(parents=True)
    out.mkdir()
    (root / "sub" / "a.wav").write_bytes(b"x")
    (out / "b.wav").write_bytes(b"x")
    (root / "link.wav").symlink_to(out / "b.wav")
    (root / "inner.wav").symlink_to(root / "sub" / "a.wav")
    assert allowed_path(Path("sub/a.wav"), root) == (root / "sub" / "a.wav").resolve()
    assert allowed_path(root / "sub" / "a.wav", root) == (root / "sub" / "a.wav").resolve()
    assert allowed_path(Path("inner.wav"), root) == (root / "sub" / "a.wav").resolve()  # a link within is fine
    for raw, code in [(Path("../out/b.wav"), 403), (out / "b.wav", 403), (Path("link.wav"), 403),
                      (Path("sub/../../out/b.wav"), 403), (Path("nope.wav"), 404), (Path("sub"), 404)]:
        with pytest.raises(HTTPProblem) as e:
            allowed_path(raw, root)
        assert e.value.status == code, raw
    with pytest.raises(HTTPProblem) as e:
        allowed_path(Path("sub/a.wav"), None)
    assert e.value.status == 403
