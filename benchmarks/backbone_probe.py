"""Which frozen Whisper layers and statistics to pool for the default model: linear probes.

For each offline Whisper encoder (tiny.en, base) the hidden states of every block are pooled over the
clip's frames (mean, or mean and standard deviation), and a standardised, class-balanced logistic
regression is trained on the train speakers of the shared real data and scored (4-class emotion UAR:
angry/happy/saddened/neutral) on the dev speakers (``--split dev``; ``test`` for reporting). This is the
measured comparison behind the choice of the speech tower in ``configs/train/lite.yaml``.

    python benchmarks/backbone_probe.py --variants tiny.en,base --split dev
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_arg, json_path, write_results  # noqa: E402

CLASSES = ["angry", "happy", "saddened", "neutral"]


def features(variant: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(N, L, 2D)`` per-block [mean, std] of the clips of ``split`` with a 4-class emotion, and labels."""
    import torch

    from paraspeechclap.audio import load_audio
    from paraspeechclap.data.splits import load_shared_manifest
    from paraspeechclap.data.vocabulary import map_label
    from paraspeechclap.encoders.whisper import create_whisper_encoder, whisper_source

    n_blocks = {"tiny.en": 4, "base": 6}[variant]
    assert whisper_source(variant)
    enc = create_whisper_encoder(variant, layers=list(range(1, n_blocks + 1)), level_input=False).eval()
    m = load_shared_manifest(split)
    xs, ys = [], []
    for i in range(len(m)):
        label = map_label(m[i].get("emotion"), "emotion")
        if label not in CLASSES:
            continue
        p = enc.prepare(load_audio(str(m.audio_path(i)))[: enc.window_samples])
        with torch.no_grad():
            states, _ = enc.hidden_states(p.features[None], torch.tensor([p.length]))
        h = torch.stack(states)[:, 0]  # (L, T, D)
        xs.append(torch.cat([h.mean(1), h.std(1)], -1).numpy())
        ys.append(label)
    return np.stack(xs), np.array(ys)


def probe(xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, yte: np.ndarray) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import recall_score
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(xtr)
    clf = LogisticRegression(C=0.05, max_iter=2000, class_weight="balanced").fit(sc.transform(xtr), ytr)
    return float(recall_score(yte, clf.predict(sc.transform(xte)), average="macro"))


def select(x: np.ndarray, layers: list[int], stat: str) -> np.ndarray:
    d = x.shape[2] // 2
    x = x[:, layers, :d] if stat == "mean" else x[:, layers]
    return x.reshape(len(x), -1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default="tiny.en,base")
    ap.add_argument("--split", choices=["dev", "test"], default="dev")
    add_json_arg(ap, "backbone_probe_{split}.json")
    args = ap.parse_args()
    rows = []
    for variant in args.variants.split(","):
        xtr, ytr = features(variant, "train")
        xte, yte = features(variant, args.split)
        n = xtr.shape[1]
        spans = dict.fromkeys([4, n])  # blocks 1-4 (the default model's) and all blocks; once when n == 4
        combos = [([k], f"block {k + 1}") for k in range(n)] + [(list(range(m)), f"blocks 1-{m}") for m in spans]
        for layers, name in combos:
            for stat in ("mean", "mean_std"):
                uar = probe(select(xtr, layers, stat), ytr, select(xte, layers, stat), yte)
                rows.append({"variant": variant, "layers": name, "pooling": stat, "uar": uar})
                print(f"{variant:8s} {name:11s} {stat:8s} 4-class emotion UAR ({args.split}) {uar:.3f}", flush=True)
    write_results(json_path(args), {"split": args.split, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
