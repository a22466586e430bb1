"""``benchmarks/report.py``: the documents' measured parts match the committed results, and ``--check``
notices when they do not."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "benchmarks" / "report.py"


def _report(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPORT), "--root", str(root), *args], capture_output=True, text=True,
                          timeout=120)


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    (root / "benchmarks").mkdir(parents=True)
    shutil.copytree(REPO / "benchmarks" / "results", root / "benchmarks" / "results")
    (root / "tests").mkdir()
    shutil.copy(REPO / "tests" / "shipped_model_floors.json", root / "tests")
    for doc in ("README.md", "MODEL_CARD.md"):
        shutil.copy(REPO / doc, root / doc)
    return root


def test_the_committed_documents_match_the_committed_results():
    out = _report(REPO, "--check")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


def test_check_fails_when_a_result_changes_and_a_rewrite_repairs_it(tmp_path):
    root = _copy(tmp_path)
    path = root / "benchmarks" / "results" / "quality_test_fp32.json"
    res = json.loads(path.read_text())
    old = res["sets"]["real"]["emotion"]["uar_present"]
    res["sets"]["real"]["emotion"]["uar_present"] = 0.123456
    path.write_text(json.dumps(res))
    out = _report(root, "--check")
    assert out.returncode == 1
    diff = out.stdout.splitlines()
    assert any(line.startswith("-") and f"{old:.3f}" in line for line in diff)  # the table's old value ...
    assert any(line.startswith("+") and "0.123" in line for line in diff)  # ... and the changed result
    assert "MODEL_CARD.md" in out.stderr
    assert _report(root).returncode == 0  # rewrite in place
    assert "0.123" in (root / "MODEL_CARD.md").read_text()
    assert _report(root, "--check").returncode == 0


@pytest.mark.parametrize("damage", ["unknown block", "missing results"])
def test_errors_are_one_line_and_exit_2(tmp_path, damage):
    root = _copy(tmp_path)
    if damage == "unknown block":
        card = root / "MODEL_CARD.md"
        card.write_text(card.read_text() + "\n<!-- report:no-such-block -->\n<!-- /report:no-such-block -->\n")
        expected = "unknown block 'no-such-block'"
    else:
        (root / "benchmarks" / "results" / "quality_dev_fp32.json").unlink()
        expected = "quality_dev_fp32.json: missing"
    out = _report(root, "--check")
    assert out.returncode == 2
    assert expected in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr


@pytest.fixture
def blocks(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import report_blocks
    return report_blocks


def test_weak_tags_name_each_tag_below_half_with_what_it_is_most_often_heard_as(blocks):
    heard = {s: {"labels": ["a", "b"], "confusion": [[3, 1], [1, 3]]} for s in blocks.VOCAB_SETS}
    heard["volume"] = {"labels": ["hushed", "soft", "loud"], "confusion": [[1, 3, 0], [0, 4, 0], [2, 0, 2]]}
    text = blocks._weak_tags(heard)
    assert "`hushed` 1 of 4 (most often heard as `soft`, 3)" in text
    assert "`loud`" not in text and "`a`" not in text  # exactly half is not fewer than half
    heard["volume"]["confusion"][0] = [4, 0, 0]
    assert blocks._weak_tags(heard) == ""


def test_lowered_floors_share_one_note_per_model_and_reason(blocks):
    lowered = [{"score": "x", "from": 0.9, "to": 0.8, "checksum": "m1", "reason": "r1"},
               {"score": "y", "from": 0.7, "to": 0.6, "checksum": "m1", "reason": "r1"},
               {"score": "x", "from": 0.8, "to": 0.75, "checksum": "m2", "reason": "r2"}]
    assert blocks._lowered_notes(lowered) == ("x from 0.9 to 0.8, y from 0.7 to 0.6 (model m1): r1; "
                                              "x from 0.8 to 0.75 (model m2): r2")


def test_a_baseline_is_named_by_every_version_that_shipped_its_weights(tmp_path, benchmark_module):
    blocks = benchmark_module("report_blocks")
    report = benchmark_module("report")
    folder = tmp_path / "benchmarks" / "results"
    versions = list(blocks.VERSION_CHANGES)
    for i, version in enumerate(versions):  # the last three keep the same weights; the others each their own
        key = blocks.QUALITY_TEST if version == blocks.SHIPPED else f"{version}/{blocks.QUALITY_TEST}"
        (folder / key).parent.mkdir(parents=True, exist_ok=True)
        (folder / f"{key}.json").write_text(json.dumps({"checksum": "same" if i >= len(versions) - 3 else version}))
    r = report.Results(tmp_path)
    assert blocks._version_of(r, versions[0]) == versions[0]
    assert blocks._version_of(r, "same") == f"{versions[-3]}-{versions[-1]} (the same weights)"
    assert blocks._version_of(r, "never shipped") is None
