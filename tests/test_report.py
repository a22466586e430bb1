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
