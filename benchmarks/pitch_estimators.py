"""How well each clip-level F0 summary of the pitch input hits the synthesis target.

Every pitched clip of a synthetic corpus was moved by WORLD so that its median F0 (as WORLD's DIO
tracks it) lands on the label's target, ``REFERENCE_F0_HZ[gender] * 2 ** (pitch_semitones / 12)``,
before its voice quality (creak, rasp, breath) and recording condition were applied. The pitch
input of the speech tower (``paraspeechclap.audio.pitch``) measures the F0 track by
autocorrelation and summarises it per clip (``PITCH_STATISTICS``). This prints, per statistic and
per voice quality / recording condition, the error against the target in semitones: the share of
clips more than 2.5 semitones off (half the distance between two pitch levels' ranges) and the
quartiles.

    python benchmarks/pitch_estimators.py                        # the dev clips of benchmarks/quality.py
    python benchmarks/pitch_estimators.py --manifest M --limit 700 --json out.json
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_arg, json_path, write_results  # noqa: E402
from quality import SYNTH_N, synthetic_manifest  # noqa: E402

OFF_SEMITONES = 2.5


def clip_errors(manifest: Any, limit: int | None) -> dict[str, dict[str, list[float]]]:
    """``{statistic: {group: [error in semitones, ...]}}`` over the pitched clips (NaN: no F0 found)."""
    from paraspeechclap.audio import load_audio
    from paraspeechclap.audio.pitch import PITCH_STATISTICS, frame_f0
    from paraspeechclap.synth.pipeline import REFERENCE_F0_HZ

    errors: dict[str, dict[str, list[float]]] = {s: defaultdict(list) for s in PITCH_STATISTICS}
    for i in range(min(len(manifest), limit or len(manifest))):
        row = manifest[i]
        if not row.get("pitch_level") or row.get("voice_quality") == "whispered":
            continue
        target = REFERENCE_F0_HZ[row["gender"]] * 2.0 ** (row["synth_params"]["pitch_semitones"] / 12.0)
        f0, _ = frame_f0(load_audio(manifest.audio_path(i)))
        for name, statistic in PITCH_STATISTICS.items():
            hz = statistic(f0)
            err = 12.0 * np.log2(hz / target) if hz else float("nan")
            for group in ("all", row["engine"], row["voice_quality"], row["clarity"]):
                errors[name][group].append(err)
    return errors


def summarise(errors: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, groups in errors.items():
        out[name] = {}
        for group, values in groups.items():
            e = np.asarray(values, dtype=np.float64)
            q1, q2, q3 = np.nanpercentile(e, [25, 50, 75])
            # NaN (no F0 found) counts as off
            out[name][group] = {"clips": len(e), "off": float(np.mean(~(np.abs(e) <= OFF_SEMITONES))),
                                "q1": float(q1), "median": float(q2), "q3": float(q3)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", default=None, help="a synthetic corpus manifest (default: quality.py's dev clips)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N rows")
    ap.add_argument("--jobs", type=int, default=2)
    add_json_arg(ap, "pitch_estimators.json")
    args = ap.parse_args()

    from paraspeechclap.data.manifest import load_manifest

    manifest = load_manifest(args.manifest) if args.manifest else synthetic_manifest("dev", SYNTH_N["dev"], args.jobs)
    results = summarise(clip_errors(manifest, args.limit))
    print(f"{'statistic':14s} {'group':12s} {'clips':>6s} {'>2.5 st':>8s} {'q1':>6s} {'median':>7s} {'q3':>6s}")
    for name, groups in results.items():
        for group, r in groups.items():
            print(f"{name:14s} {group:12s} {r['clips']:6d} {r['off']:8.3f} {r['q1']:6.2f} {r['median']:7.2f} "
                  f"{r['q3']:6.2f}")
    write_results(json_path(args), {"manifest": str(args.manifest or "quality dev"), "limit": args.limit,
                                    "off_semitones": OFF_SEMITONES, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
