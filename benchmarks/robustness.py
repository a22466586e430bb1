"""Robustness of zero-shot classification to how a clip was recorded or stored.

On the dev (or test) clips of ``benchmarks/quality.py`` (held-out synthetic voices and the shared real
data), each perturbation is applied and the zero-shot UAR compared with the clean clips:
resampled to 8, 22.05, 44.1 and 48 kHz (the model resamples back to 16 kHz), made stereo (the two
channels differ in gain), encoded as MP3, and re-levelled by -20 dB (not for loudness, which *is* the
level). Target: every UAR within 0.05 of the clean one (the recording-condition set is excepted for 8 kHz
and MP3, which change what it measures).

    python benchmarks/robustness.py --split dev [--model M]      # results/robustness_dev_fp32.json
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_arg, attribute_scores, json_path, model_fields, write_results  # noqa: E402
from quality import REAL_SETS, SYNTH_N, SYNTH_SETS, synthetic_manifest  # noqa: E402

Perturb = Callable[[np.ndarray], tuple[np.ndarray, int]]
TOLERANCE = 0.05


def _resample(rate: int) -> Perturb:
    def run(x: np.ndarray) -> tuple[np.ndarray, int]:
        import soxr

        return soxr.resample(x, 16000, rate).astype(np.float32), rate
    return run


def _stereo(x: np.ndarray) -> tuple[np.ndarray, int]:
    return np.stack([x, 0.7 * x], axis=1), 16000


def _mp3(x: np.ndarray) -> tuple[np.ndarray, int]:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, x, 16000, format="MP3")
    buf.seek(0)
    y, sr = sf.read(buf, dtype="float32")
    return y, sr


def _gain(db: float) -> Perturb:
    return lambda x: ((x * 10 ** (db / 20)).astype(np.float32), 16000)


PERTURBATIONS: dict[str, Perturb] = {
    "8 kHz": _resample(8000), "22.05 kHz": _resample(22050), "44.1 kHz": _resample(44100),
    "48 kHz": _resample(48000), "stereo": _stereo, "mp3": _mp3, "-20 dB": _gain(-20.0),
}
EXCEPTED = {("recording", "8 kHz"), ("recording", "mp3"), ("loudness", "-20 dB")}


def uars(model: Any, rows: list[dict], audio: np.ndarray, sets: list[str]) -> dict[str, float]:
    """UAR over the classes present (what ``quality.py`` reports) of each set with gold labels."""
    out = {}
    for name in sets:
        m = attribute_scores(model, audio, rows, name)
        if m:
            out[name] = m["uar_present"]
    return out


def run_set(model: Any, manifest: Any, sets: list[str]) -> dict[str, dict[str, float]]:
    """Clean and perturbed UARs. Every version is embedded in the same batches (16 clips, input order)
    as ``quality.py`` embeds the clean files, so the clean row equals its numbers in any precision."""
    from paraspeechclap.audio import load_audio

    rows = [manifest[i] for i in range(len(manifest))]
    clean = [load_audio(str(manifest.audio_path(i))) for i in range(len(manifest))]
    results = {"clean": uars(model, rows, model.embed_audio(clean, batch_size=16), sets)}
    for name, fn in PERTURBATIONS.items():
        pairs = [fn(x) for x in clean]
        (rate,) = {sr for _, sr in pairs}
        results[name] = uars(model, rows, model.embed_audio([a for a, _ in pairs], sample_rate=rate, batch_size=16),
                             sets)
        print(f"  {name}: done", file=sys.stderr, flush=True)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--split", choices=["dev", "test"], default="dev")
    ap.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "int8"])
    add_json_arg(ap, "robustness_{split}_{precision}.json")
    args = ap.parse_args()
    from paraspeechclap import load_model
    from paraspeechclap.data.splits import load_shared_manifest

    model = load_model(args.model, precision=args.precision)
    tables = {"synthetic": run_set(model, synthetic_manifest(args.split, SYNTH_N[args.split], 2), SYNTH_SETS),
              "real": run_set(model, load_shared_manifest(args.split), REAL_SETS)}
    worst, failures = 0.0, []
    print(f"{'set':10s} {'attribute':14s} {'clean':>6s} " + " ".join(f"{p:>9s}" for p in PERTURBATIONS))
    for set_name, res in tables.items():
        for attr, clean in res["clean"].items():
            cells = []
            for p in PERTURBATIONS:
                d = res[p][attr] - clean
                if (attr, p) in EXCEPTED:
                    cells.append(f"{d:+8.3f}*")
                    continue
                worst = min(worst, d)
                if abs(d) > TOLERANCE:
                    failures.append(f"{set_name}/{attr}/{p}")
                cells.append(f"{d:+9.3f}")
            print(f"{set_name:10s} {attr:14s} {clean:6.3f} " + " ".join(cells))
    print(f"(UAR change from clean; * = excepted) worst change {worst:+.3f}; "
          f"{'all within' if not failures else 'outside'} {TOLERANCE}: {', '.join(failures) or 'none'}")
    write_results(json_path(args, precision=model.precision),
                  {**model_fields(model), "split": args.split, "tables": tables, "worst": worst,
                   "tolerance": TOLERANCE, "excepted": sorted(f"{a}/{p}" for a, p in EXCEPTED), "failures": failures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
