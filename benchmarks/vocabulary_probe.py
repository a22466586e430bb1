"""Is the rest of the vocabulary in the audio representation at all? Linear probes (issue 21).

A logistic regression per official intrinsic set, trained on tag-recipe clips of the training voices
(``vocabulary.py``'s clips with the ``train`` voices and sentences: eSpeak, Piper and Flite, held-out
voices excluded) and scored (UAR) on the dev clips of ``vocabulary.py`` (held-out voices, their own
sentences), on two representations of a model: its frozen backbone features (what the trainable heads
see) and its final audio embedding. Zero-shot scores (``vocabulary.py``) near chance with probe scores
far above it mean the audio side separates the tags and the text side does not point at them: training
on captions that name them is the remedy, not a new backbone.

    python benchmarks/vocabulary_probe.py            # -> results/vocabulary_probe_dev_fp32.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_arg, json_path, model_fields, write_results  # noqa: E402
from vocabulary import CLIPS, SETS, build  # noqa: E402


def representations(model: Any, folder: Path, rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """``{"frozen": (N, F) backbone features, "embedding": (N, D) audio embeddings}`` of the clips."""
    from paraspeechclap.audio import load_audio
    from paraspeechclap.training.features import full_clip_features

    paths = [str(folder / r["relative_audio_path"]) for r in rows]
    frozen = np.stack([full_clip_features(load_audio(p), model.audio_branch, 16).numpy() for p in paths])
    return {"frozen": frozen, "embedding": np.asarray(model.embed_audio(paths, batch_size=16))}


def probe_uar(train_x: np.ndarray, train_y: list[str], test_x: np.ndarray, test_y: list[str], c: float) -> float:
    """UAR on the test clips of a standardised L2-regularised logistic regression fitted on the train clips."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import recall_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))
    clf.fit(train_x, train_y)
    return float(recall_score(test_y, clf.predict(test_x), average="macro"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model to probe (default: the embedded default model)")
    ap.add_argument("--c", type=float, default=0.1, help="inverse L2 strength of the probes (default 0.1)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16"])
    add_json_arg(ap, "vocabulary_probe_dev_{precision}.json")
    args = ap.parse_args()

    from paraspeechclap import load_model

    model = load_model(args.model, precision=args.precision)
    train_dir, train = build("train", CLIPS["train"], args.jobs)
    dev_dir, dev = build("dev", CLIPS["dev"], args.jobs)
    rep_train, rep_dev = representations(model, train_dir, train), representations(model, dev_dir, dev)
    sets: dict[str, Any] = {}
    for name in SETS:
        key = f"classification_{name}"
        a = [i for i, r in enumerate(train) if key in r]
        b = [i for i, r in enumerate(dev) if key in r]
        sets[name] = {"train_clips": len(a), "dev_clips": len(b), "chance": 1 / len({train[i][key] for i in a}),
                      **{rep: probe_uar(rep_train[rep][a], [train[i][key] for i in a], rep_dev[rep][b],
                                        [dev[i][key] for i in b], args.c) for rep in rep_train}}
        print(f"{name:8s} frozen {sets[name]['frozen']:.3f}  embedding {sets[name]['embedding']:.3f}  "
              f"(chance {sets[name]['chance']:.3f}; {len(a)} train, {len(b)} dev clips)")
    write_results(json_path(args, precision=model.precision),
                  {**model_fields(model), "c": args.c, "dims": {k: int(v.shape[1]) for k, v in rep_train.items()},
                   "sets": sets})
    return 0


if __name__ == "__main__":
    sys.exit(main())
