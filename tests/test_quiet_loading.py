"""Library progress bars (transformers' "Loading weights", datasets') are off while models and data
sets load, the previous switch states come back afterwards, and this project's own bars stay."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def bars_on():
    """Library bars switched on (their default), and switched back to what they were after the test."""
    import datasets
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )
    from transformers.utils import logging as hf_logging

    before = (hf_logging.is_progress_bar_enabled(), are_progress_bars_disabled(), datasets.is_progress_bar_enabled())
    hf_logging.enable_progress_bar()
    enable_progress_bars()
    datasets.enable_progress_bars()
    yield
    (hf_logging.enable_progress_bar if before[0] else hf_logging.disable_progress_bar)()
    (disable_progress_bars if before[1] else enable_progress_bars)()
    (datasets.enable_progress_bars if before[2] else datasets.disable_progress_bars)()


def _states():
    import datasets
    from huggingface_hub.utils import are_progress_bars_disabled
    from transformers.utils import logging as hf_logging

    return {"transformers": hf_logging.is_progress_bar_enabled(), "datasets": datasets.is_progress_bar_enabled(),
            "hub_downloads": not are_progress_bars_disabled()}


def test_block_silences_library_bars_and_restores_them(bars_on):
    from paraspeechclap._quiet import quiet_library_progress

    assert _states() == {"transformers": True, "datasets": True, "hub_downloads": True}
    with quiet_library_progress():
        # download bars stay: they appear only during a real (long) download
        assert _states() == {"transformers": False, "datasets": False, "hub_downloads": True}
        with quiet_library_progress():  # nested: the inner end does not switch anything back on
            pass
        assert _states()["transformers"] is False
    assert _states() == {"transformers": True, "datasets": True, "hub_downloads": True}


def test_block_keeps_switches_that_were_off_off(bars_on):
    import datasets
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars
    from transformers.utils import logging as hf_logging

    from paraspeechclap._quiet import quiet_library_progress

    hf_logging.disable_progress_bar()  # also turns the hub's off
    datasets.disable_progress_bars()
    with quiet_library_progress():
        pass
    assert _states() == {"transformers": False, "datasets": False, "hub_downloads": False}

    hf_logging.enable_progress_bar()
    disable_progress_bars("huggingface_hub.some_group")  # a per-group hub switch survives the block
    with quiet_library_progress():
        pass
    assert are_progress_bars_disabled("huggingface_hub.some_group") and not are_progress_bars_disabled()


def test_block_restores_after_an_error(bars_on):
    from paraspeechclap._quiet import quiet_library_progress

    with pytest.raises(RuntimeError), quiet_library_progress():
        raise RuntimeError("load failed")
    assert _states() == {"transformers": True, "datasets": True, "hub_downloads": True}


def test_from_pretrained_draws_no_bar_and_load_model_restores_state(bars_on, capfd, tiny_dir):
    from transformers import AutoModel

    from paraspeechclap import load_model
    from paraspeechclap.encoders.hf_text import build_minilm, minilm_path

    AutoModel.from_pretrained(str(minilm_path()))  # control: the library draws its bar to stderr
    assert "Loading weights" in capfd.readouterr().err

    build_minilm()  # AutoModel.from_pretrained inside the package
    load_model(tiny_dir, device="cpu", precision="fp32")
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "%|" not in err
    assert _states() == {"transformers": True, "datasets": True, "hub_downloads": True}


def test_saved_dataset_loads_without_bars(bars_on, capfd, tmp_path):
    import datasets

    from paraspeechclap.data.manifest import load_manifest

    rows = [{"source": "s", "relative_audio_path": f"{i}.wav", "text_description": "A voice."} for i in range(3)]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    capfd.readouterr()
    assert len(load_manifest(tmp_path / "ds")) == 3
    assert "%|" not in capfd.readouterr().err
    assert _states() == {"transformers": True, "datasets": True, "hub_downloads": True}


def test_importing_the_package_changes_no_library_state():
    code = ("from transformers.utils import logging as L; import datasets, paraspeechclap, paraspeechclap.pretrained, "
            "paraspeechclap.cli.main, paraspeechclap._quiet; "
            "print(L.is_progress_bar_enabled(), datasets.is_progress_bar_enabled())")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["True", "True"]


def test_cli_classify_with_the_default_model_prints_no_library_bars(tmp_path):
    """The embedded model loads MiniLM with from_pretrained: before, a "Loading weights" bar on stderr."""
    clips = sorted(str(p) for p in (ROOT / "examples").glob("synth_*.flac"))[:2]
    run = subprocess.run([sys.executable, "-m", "paraspeechclap", "classify", *clips, "--attribute", "speaking_rate",
                          "--precision", "fp32"], capture_output=True, text=True, cwd=tmp_path, check=False)
    assert run.returncode == 0, run.stderr
    assert "Loading weights" not in run.stderr and "%|" not in run.stderr
    assert run.stderr.strip() == ""


def _run_in_terminal(argv, cwd) -> str:
    """Run ``argv`` with stdout and stderr on a pseudo-terminal (120 columns), as a user would see it."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    parent, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # tqdm draws nothing at 0 columns
    proc = subprocess.Popen(argv, stdin=child, stdout=child, stderr=child, cwd=cwd, close_fds=True)
    os.close(child)
    out = b""
    while True:
        try:
            chunk = os.read(parent, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(parent)
    assert proc.wait(timeout=300) == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_terminal_shows_the_own_bar_and_no_library_bar(tmp_path):
    clips = sorted(str(p) for p in (ROOT / "examples").glob("synth_*.flac"))[:3]
    shown = _run_in_terminal([sys.executable, "-m", "paraspeechclap", "embed", *clips, "--out", str(tmp_path / "e.npy"),
                              "--precision", "fp32"], tmp_path)
    assert "embedding:" in shown  # the project's own bar (tqdm.auto, drawn on terminals)
    assert "Loading weights" not in shown
