"""``paraspeechclap rerank``: both layouts, the official output folder, bad inputs, WER and pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from paraspeechclap.cli.main import main
from paraspeechclap.reranking.quality import QualityGate
from paraspeechclap.reranking.scorer import PromptScores
from paraspeechclap.testing import tone

PROMPTS = ["A deep male voice speaks slowly.", "A high-pitched woman talks fast.", "A whispered voice."]


def _official(root: Path, n_iter: int = 3, prompts=PROMPTS, extra_files: bool = True) -> Path:
    """The official layout with distinct tones as candidates (and a blank line in the prompt file)."""
    first = root / "iter_1"
    first.mkdir(parents=True)
    (first / "input_descriptions.txt").write_text(f"{prompts[0]}\n\n" + "".join(f"{p}\n" for p in prompts[1:]))
    if extra_files:
        (first / "input_genders.txt").write_text("male\nfemale\n\n")
        (first / "input_texts.txt").write_text("".join(f"sentence {i}\n" for i in range(len(prompts))))
    for k in range(1, n_iter + 1):
        audios = root / f"iter_{k}" / "audios"
        audios.mkdir(parents=True, exist_ok=True)
        for i in range(len(prompts)):
            sf.write(audios / f"{i}.wav", tone(0.5 + 0.1 * k, 90.0 * k + 37.0 * i, seed=10 * k + i), 16000)
        if extra_files:
            (root / f"iter_{k}" / "wer_per_example.txt").write_text("".join(f"{k / 10 + i / 100}\n" for i in range(len(prompts))))
            (root / f"iter_{k}" / "output_transcriptions.txt").write_text("".join(f"it{k} p{i}\n" for i in range(len(prompts))))
    return root


def _run(capsys, *args):
    code = main(["rerank", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _summary(out_dir: Path):
    return json.loads((out_dir / "selection_summary.json").read_text())


def _no_leftovers(parent: Path, name: str) -> bool:
    return not (parent / name).exists() and not list(parent.glob(f".{name}.*"))


class Fake:
    """A stand-in model with known scores per candidate path (and -inf for names in ``silent``)."""

    model_id, checksum, precision = "fake", "f" * 64, "fp32"

    def __init__(self, scores):
        self.scores = scores

    def score_many(self, prompts, candidate_lists, progress=False):
        return [PromptScores(np.array([self.scores[(i, Path(c).parent.parent.name if "iter_" in str(c) else Path(c).name)]
                                       for c in cands], dtype=float))
                for i, cands in enumerate(candidate_lists)]


@pytest.fixture()
def fake_model(monkeypatch):
    def install(scores):
        monkeypatch.setattr("paraspeechclap.cli.rerank_cmd.model_from_args", lambda args: Fake(scores))

    return install


def test_official_layout_end_to_end_matches_independent_scores(tiny, tiny_dir, tmp_path, capsys):
    root = _official(tmp_path / "run")
    # fp32: the scores are compared with the in-process fp32 model's
    code, _, err = _run(capsys, "--input-dir", root, "--out-name", "best", "--model", tiny_dir, "--precision", "fp32")
    assert code == 0, err
    best = root / "best"
    summary = _summary(best)
    assert [e["prompt_idx"] for e in summary] == [0, 1, 2]
    assert [e["text_prompt"] for e in summary] == PROMPTS  # the blank line was dropped
    for i, entry in enumerate(summary):
        paths = [str(root / f"iter_{k}" / "audios" / f"{i}.wav") for k in (1, 2, 3)]
        expected = tiny.embed_audio(paths) @ tiny.embed_text([PROMPTS[i]])[0]
        np.testing.assert_allclose(entry["all_scores"], expected, atol=1e-5)
        k = int(np.argmax(expected)) + 1
        assert entry["best_iteration_idx"] == k
        assert entry["best_score"] == pytest.approx(float(expected.max()), abs=1e-5)
        assert (best / "audios" / f"{i}.wav").read_bytes() == Path(paths[k - 1]).read_bytes()
    wins = [e["best_iteration_idx"] for e in summary]
    assert (best / "wer_per_example.txt").read_text().splitlines() == [f"{k / 10 + i / 100}" for i, k in enumerate(wins)]
    assert (best / "output_transcriptions.txt").read_text().splitlines() == [f"it{k} p{i}" for i, k in enumerate(wins)]
    for name in ("input_descriptions.txt", "input_genders.txt", "input_texts.txt"):
        assert (best / name).read_bytes() == (root / "iter_1" / name).read_bytes()
    assert not (best / "input_negative_descriptions.txt").exists()
    info = json.loads((best / "rerank_info.json").read_text())
    assert info["model"] == "tiny" and info["layout"] == "official"
    # an existing output folder needs --overwrite
    assert _run(capsys, "--input-dir", root, "--out-name", "best", "--model", tiny_dir)[0] == 2
    assert _run(capsys, "--input-dir", root, "--out-name", "best", "--model", tiny_dir, "--overwrite",
                "--precision", "fp32")[0] == 0
    assert _summary(best) == summary and not list(root.glob(".best.*"))


def test_plain_layout_sorts_candidates_by_name(fake_model, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a deep voice\n\na fast voice\n")
    cands = tmp_path / "cands"
    for i, names in enumerate([["10.wav", "2.wav", "b.wav"], ["x.wav", "y.wav"]]):
        (cands / str(i)).mkdir(parents=True)
        for n in names:
            sf.write(cands / str(i) / n, tone(0.3, 150.0), 16000)
    (cands / "0" / "notes.txt").write_text("not audio")
    fake_model({(0, "2.wav"): 0.1, (0, "10.wav"): 0.3, (0, "b.wav"): 0.3, (1, "x.wav"): 0.0, (1, "y.wav"): 0.2})
    out = tmp_path / "out"
    code, _, err = _run(capsys, "--prompts", prompts, "--candidates", cands, "--out", out)
    assert code == 0, err
    s = _summary(out)
    # natural order 2.wav, 10.wav, b.wav; 10.wav and b.wav tie: the lower index wins
    assert [Path(c).name for c in s[0]["candidates"]] == ["2.wav", "10.wav", "b.wav"]
    assert s[0]["best_iteration_idx"] == 2 and Path(s[0]["best_candidate"]).name == "10.wav"
    assert s[1]["best_iteration_idx"] == 2 and s[1]["all_scores"] == [0.0, 0.2]
    assert (out / "audios" / "0.wav").read_bytes() == (cands / "0" / "10.wav").read_bytes()
    assert (out / "input_descriptions.txt").read_text() == "a deep voice\na fast voice\n"


def test_missing_candidate_fails_or_is_skipped(tiny_dir, tmp_path, capsys):
    root = _official(tmp_path / "run")
    gone = root / "iter_2" / "audios" / "1.wav"
    gone.unlink()
    code, _, err = _run(capsys, "--input-dir", root, "--out-name", "best", "--model", tiny_dir)
    assert code == 2 and str(gone) in err and "missing candidate" in err
    assert _no_leftovers(root, "best")
    code, _, err = _run(capsys, "--input-dir", root, "--out-name", "best", "--model", tiny_dir, "--skip-bad")
    assert code == 0, err
    entry = _summary(root / "best")[1]
    assert entry["all_scores"][1] is None and entry["best_iteration_idx"] in (1, 3)
    assert entry["skipped"][0]["iteration_idx"] == 2 and entry["skipped"][0]["kind"] == "missing"


def test_count_mismatch_is_fatal_even_with_skip_bad(tiny_dir, tmp_path, capsys):
    root = _official(tmp_path / "run")
    sf.write(root / "iter_3" / "audios" / "3.wav", tone(0.5), 16000)
    (root / "iter_2" / "wer_per_example.txt").write_text("0.1\n")
    code, _, err = _run(capsys, "--input-dir", root, "--out-name", "best", "--model", tiny_dir, "--skip-bad")
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("problem:")]
    assert len(lines) == 2
    assert str(root / "iter_3" / "audios") in lines[0] and "3.wav" in lines[0] and "counts do not match" in lines[0]
    assert str(root / "iter_2" / "wer_per_example.txt") in lines[1] and "1 lines for 3 prompts" in lines[1]
    assert _no_leftovers(root, "best")


def test_unreadable_audio_fails_or_is_skipped(tiny_dir, tmp_path, capsys):
    root = _official(tmp_path / "run")
    bad = root / "iter_1" / "audios" / "0.wav"
    bad.write_bytes(b"RIFF garbage, not a wave file")
    code, _, err = _run(capsys, "--input-dir", root, "--out-name", "best", "--model", tiny_dir)
    assert code == 2 and str(bad) in err
    assert _no_leftovers(root, "best")
    code, _, err = _run(capsys, "--input-dir", root, "--out-name", "best", "--model", tiny_dir, "--skip-bad", "--json")
    assert code == 0, err
    entry = _summary(root / "best")[0]
    assert entry["best_iteration_idx"] in (2, 3) and entry["all_scores"][0] is None
    assert entry["skipped"][0]["kind"] == "unreadable" and str(bad) in entry["skipped"][0]["message"]


def test_silent_candidates_rank_last_and_empty_prompts_are_reported(tiny_dir, tmp_path, capsys):
    root = _official(tmp_path / "run")
    for k in (1, 2, 3):  # prompt 2: every candidate silent or empty
        sf.write(root / f"iter_{k}" / "audios" / "2.wav", np.zeros(0 if k == 3 else 4000, np.float32), 16000)
    sf.write(root / "iter_2" / "audios" / "0.wav", np.zeros(8000, np.float32), 16000)
    code, _, err = _run(capsys, "--input-dir", root, "--out-name", "best", "--model", tiny_dir)
    assert code == 2 and "prompt 2: no usable candidate" in err
    assert "warning:" in err and "silence" in err and _no_leftovers(root, "best")
    code, _, err = _run(capsys, "--input-dir", root, "--out-name", "best", "--model", tiny_dir, "--skip-bad")
    assert code == 0, err
    s = _summary(root / "best")
    assert s[0]["all_scores"][1] is None and s[0]["best_iteration_idx"] != 2
    assert s[0]["silent"][0]["iteration_idx"] == 2
    assert s[2]["best_iteration_idx"] is None and s[2]["best_score"] is None and s[2]["all_scores"] == [None] * 3
    assert not (root / "best" / "audios" / "2.wav").exists()
    assert (root / "best" / "wer_per_example.txt").read_text().splitlines()[2] == ""


def test_wer_threshold_weight_table_and_pairs(fake_model, tmp_path, capsys):
    root = _official(tmp_path / "run", prompts=PROMPTS[:2])
    # WER files: iter_k line i = k/10 + i/100, so iter_1 has the lowest WER
    fake_model({(0, "iter_1"): 0.1, (0, "iter_2"): 0.5, (0, "iter_3"): 0.4,
                (1, "iter_1"): 0.2, (1, "iter_2"): 0.3, (1, "iter_3"): 0.1})
    pairs = tmp_path / "pairs.jsonl"
    code, _, err = _run(capsys, "--input-dir", root, "--out-name", "plain", "--model", "x", "--pairs", pairs)
    assert code == 0, err
    assert [e["best_iteration_idx"] for e in _summary(root / "plain")] == [2, 2]
    rows = [json.loads(line) for line in pairs.read_text().splitlines()]
    assert [(r["prompt_idx"], r["chosen_idx"], r["rejected_idx"]) for r in rows] == [(0, 2, 3), (0, 2, 1), (1, 2, 1), (1, 2, 3)]
    assert rows[0]["margin"] == pytest.approx(0.1) and rows[0]["chosen"].endswith("iter_2/audios/0.wav")
    # threshold 0.25: only iter_1 and iter_2 pass (0.1/0.2 and 0.11/0.21)
    code, _, err = _run(capsys, "--input-dir", root, "--out-name", "thr", "--model", "x", "--wer-threshold", "0.25")
    assert code == 0, err
    s = _summary(root / "thr")
    assert [e["best_iteration_idx"] for e in s] == [2, 2] and s[0]["all_wer"] == [0.1, 0.2, 0.3]
    code, _, err = _run(capsys, "--input-dir", root, "--out-name", "thr2", "--model", "x", "--wer-threshold", "0.15")
    assert [e["best_iteration_idx"] for e in _summary(root / "thr2")] == [1, 1]
    # z-score, weight 1, prompt 0: style [0.1, 0.5, 0.4] -> mean 1/3, std 0.16997 -> z = [-1.3728, 0.9806, 0.3922];
    # WER [0.1, 0.2, 0.3] -> z = [-1.2247, 0, 1.2247]
    code, _, err = _run(capsys, "--input-dir", root, "--out-name", "z", "--model", "x", "--wer-weight", "1")
    e = _summary(root / "z")[0]
    np.testing.assert_allclose(e["all_rewards"], [-1.3728 + 1.2247, 0.9806, 0.3922 - 1.2247], atol=1e-4)
    assert e["best_iteration_idx"] == 2 and e["best_reward"] == pytest.approx(0.9806, abs=1e-4)
    # a user WER table overrides the files: iter_2 of prompt 0 gets WER 0.9 and fails the threshold
    table = tmp_path / "wer.csv"
    table.write_text("prompt_idx,candidate,my_wer\n" + "".join(f"{i},{k},0.0\n" for i in (0, 1) for k in (1, 3))
                     + "0,2,0.9\n1,2,0.0\n")
    code, _, err = _run(capsys, "--input-dir", root, "--out-name", "tab", "--model", "x", "--wer", table,
                        "--wer-column", "my_wer", "--wer-threshold", "0.5")
    assert code == 0, err
    assert [e["best_iteration_idx"] for e in _summary(root / "tab")] == [3, 2]
    table.write_text("prompt_idx,candidate,my_wer\n7,1,0.0\n")
    code, _, err = _run(capsys, "--input-dir", root, "--out-name", "tab2", "--model", "x", "--wer", table,
                        "--wer-column", "my_wer")
    assert code == 2 and f"{table}:2" in err and _no_leftovers(root, "tab2")


def test_usage_errors(tmp_path, capsys):
    root = _official(tmp_path / "run", extra_files=False)
    assert _run(capsys, "--input-dir", root)[0] == 2
    assert _run(capsys, "--input-dir", root, "--out-name", "iter_4")[0] == 2
    code, _, err = _run(capsys, "--input-dir", root, "--out-name", "b", "--wer-threshold", "0.1")
    assert code == 2 and "wer_per_example.txt" in err
    code, _, err = _run(capsys, "--input-dir", tmp_path / "nothing", "--out-name", "b")
    assert code == 2 and "not found" in err


def test_quality_gate_flag_ranks_a_noisy_candidate_last(tiny_dir, tmp_path, capsys):
    """--quality-gate: iteration 1's clip of prompt 0 drowned in noise (0 dB) ranks last and is reported.
    Speech clips (a pure tone sits near its peak for a few per cent of samples and reads as clipped)."""
    from paraspeechclap.audio import load_audio

    root = _official(tmp_path / "d")
    speech = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.flac"))
    for k in range(1, 4):
        for i in range(len(PROMPTS)):
            sf.write(root / f"iter_{k}" / "audios" / f"{i}.wav", load_audio(str(speech[3 * (k - 1) + i])), 16000)
    clip = root / "iter_1" / "audios" / "0.wav"
    x, _ = sf.read(clip, dtype="float32")
    noise = np.random.default_rng(0).standard_normal(len(x)).astype(np.float32) * np.sqrt(np.mean(x ** 2))
    sf.write(clip, x + noise, 16000)
    code, _, err = _run(capsys, "--input-dir", root, "--out-name", "gated", "--model", tiny_dir, "--precision", "fp32",
                        "--quality-gate")
    assert code == 0, err
    entry = _summary(root / "gated")[0]
    assert entry["failed_quality_gate"] == [1] and entry["quality"][0]["reasons"] == ["snr"]
    assert entry["best_iteration_idx"] != 1 and all(q["ok"] for q in entry["quality"][1:])
    info = json.loads((root / "gated" / "rerank_info.json").read_text())
    assert info["quality_gate"]["min_snr_db"] == QualityGate().min_snr_db == 6.0
    code, _, _ = _run(capsys, "--input-dir", root, "--out-name", "plain", "--model", tiny_dir, "--precision", "fp32")
    assert "quality" not in _summary(root / "plain")[0]
    # a stricter threshold: 60 dB fails every clip (real recordings have far less), and is recorded
    code, _, err = _run(capsys, "--input-dir", root, "--out-name", "strict", "--model", tiny_dir, "--precision", "fp32",
                        "--quality-gate", "--gate-min-snr-db", "60")
    assert code == 0, err
    entry = _summary(root / "strict")[0]
    assert len(entry["failed_quality_gate"]) > 1  # more than the noisy clip the default gate caught
    for k, q in enumerate(entry["quality"], start=1):  # every clip with a measurable SNR below 60 dB fails on it
        assert (k in entry["failed_quality_gate"]) == ("snr" in q["reasons"]), q
    assert json.loads((root / "strict" / "rerank_info.json").read_text())["quality_gate"]["min_snr_db"] == 60.0


@pytest.mark.parametrize("flags, message", [
    (["--gate-min-snr-db", "12"], "add --quality-gate"),
    (["--quality-gate", "--gate-min-snr-db", "nan"], "finite number"),
    (["--quality-gate", "--gate-min-snr-db", "loud"], "invalid finite_float value"),
])
def test_gate_threshold_flag_errors(tmp_path, capsys, flags, message):
    root = _official(tmp_path / "run")
    try:
        code, _, err = _run(capsys, "--input-dir", root, "--out-name", "b", *flags)
    except SystemExit as exc:  # argparse refuses a bad value itself
        code, err = exc.code, capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
