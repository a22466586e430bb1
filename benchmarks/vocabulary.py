"""The rest of the official vocabulary (issue 21): zero-shot UAR of each official intrinsic set over the
tags the synthetic recipes produce, and retrieval of multi-tag captions, on held-out voices.

Clips (generated once, cached): sentences of the split's own pool, spoken by the split's held-out voices
(dev: two eSpeak voices; test: four others plus every Kokoro voice, an engine the default model never
heard), each carrying one tag of a voice set (pitch, texture, volume) and one of a delivery set
(clarity, rhythm), rendered by :func:`paraspeechclap.synth.tags.render_tagged`: every pair of tags
equally often. Each clip's caption names its two tags and the speaker's gender in the ParaSpeechCaps
style (:func:`paraspeechclap.data.captions.describe_tags`, canonical wording).

Reported per set: ``uar`` over the produced tags (the model chooses among them only; chance 1/K),
``uar_official`` (the model chooses among all the set's official candidates, produced or not, as the
official protocol does), confusion matrices; and caption retrieval R@1/R@10 both ways.

    python benchmarks/vocabulary.py --split dev              # -> results/vocabulary_dev_fp32.json
    python benchmarks/vocabulary.py --model runs/lite/final --split dev --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_arg, json_path, model_fields, write_results  # noqa: E402

SETS = ("pitch", "texture", "volume", "clarity", "rhythm")
#: clips per split; a multiple of the number of (voice tag, delivery tag) pairs times the voices
CLIPS = {"train": 352, "dev": 176, "test": 264}
#: bump when the clip layout changes (the cache key, beside the recipes' own version)
VERSION = 3


def _voices(split: str) -> list[Any]:
    """dev/test: the split's held-out voices (test: plus every Kokoro voice); train (for probes): the
    voices the default model's corpus draws from (eSpeak, Piper, Flite), held-out ones excluded."""
    from paraspeechclap.synth.engines import evaluation_voices, select_voices

    if split == "train":
        return select_voices(engines=["espeak", "piper", "flite"], exclude_voices=["held-out:dev", "held-out:test"])
    return evaluation_voices(split)


def build(split: str, n: int, jobs: int) -> tuple[Path, list[dict[str, Any]]]:
    """Render (once, cached) the split's clips (:func:`paraspeechclap.synth.tags.plan_tagged` with the
    split's voices and sentences); returns the folder and its manifest rows."""
    from paraspeechclap.synth.sentences import SENTENCE_POOLS
    from paraspeechclap.synth.tags import RECIPES_VERSION, generate_tagged, plan_tagged
    from paraspeechclap.training.features import default_cache_root

    out = default_cache_root() / "vocabulary" / f"{split}-n{n}-v{VERSION}-r{RECIPES_VERSION}"
    manifest = out / "manifest.jsonl"
    if not manifest.is_file():
        generate_tagged(out, plan_tagged(n, _voices(split), SENTENCE_POOLS[split], split), jobs)
    return out / "vocabulary", [json.loads(line) for line in manifest.read_text().splitlines()]


def set_scores(model: Any, audio: np.ndarray, rows: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """UAR of one official set among the produced tags and among all its official candidates."""
    from paraspeechclap.evaluation.classification import score_attribute_set
    from paraspeechclap.synth.tags import produced_tags

    produced = produced_tags(name)
    keep = [i for i, r in enumerate(rows) if r.get(f"classification_{name}") in produced]
    sub = [rows[i] for i in keep]
    among = score_attribute_set(model, audio[keep], sub, name, among=produced)
    official = score_attribute_set(model, audio[keep], sub, name)
    return {"uar": among["uar"], "uar_present": among["uar_present"], "chance": among["chance"],
            "classes": among["classes"], "classes_present": among["classes_present"], "tags": produced,
            "count": among["count"], "labels": among["labels"], "confusion": among["confusion"],
            "uar_official": official["uar_present"],
            "chance_official": official["chance"], "official_candidates": official["labels"]}


def caption_retrieval(model: Any, audio: np.ndarray, rows: list[dict[str, Any]]) -> dict[str, Any]:
    from paraspeechclap.evaluation.retrieval import dedupe_captions, retrieval_metrics

    captions, gt = dedupe_captions([r["text_description"] for r in rows])
    sim = audio @ np.asarray(model.embed_text(captions)).T
    m = retrieval_metrics(sim, gt, ks=(1, 10))
    return {"captions": len(captions), "clips": len(rows), "chance_r1": 1 / len(captions),
            "chance_r10": min(1.0, 10 / len(captions)), **m}


def evaluate(model: Any, folder: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    audio = np.asarray(model.embed_audio([str(folder / r["relative_audio_path"]) for r in rows], batch_size=16))
    out: dict[str, Any] = {"all": {"sets": {s: set_scores(model, audio, rows, s) for s in SETS},
                                   "retrieval": caption_retrieval(model, audio, rows)}}
    for engine in sorted({r["engine"] for r in rows}):
        keep = [i for i, r in enumerate(rows) if r["engine"] == engine]
        sub = [rows[i] for i in keep]
        out[f"engine={engine}"] = {"sets": {s: set_scores(model, audio[keep], sub, s) for s in SETS},
                                   "retrieval": caption_retrieval(model, audio[keep], sub)}
    return out


def _print(results: dict[str, Any]) -> None:
    for group, r in results["groups"].items():
        print(f"\n{group}: set  UAR among produced (chance)  UAR among official candidates (chance)")
        for s, m in r["sets"].items():
            print(f"  {s:8s} {m['uar']:.3f} ({m['chance']:.3f}, {len(m['tags'])} tags, n={m['count']})"
                  f"   {m['uar_official']:.3f} ({m['chance_official']:.3f})")
        a2t, t2a = r["retrieval"]["audio_to_text"], r["retrieval"]["text_to_audio"]
        print(f"  captions ({r['retrieval']['captions']} distinct): audio->text R@1 {a2t['R@1']:.3f} R@10 "
              f"{a2t['R@10']:.3f}; text->audio R@1 {t2a['R@1']:.3f} R@10 {t2a['R@10']:.3f} "
              f"(chance R@1 {r['retrieval']['chance_r1']:.3f})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model to evaluate (default: the embedded default model)")
    ap.add_argument("--split", choices=["dev", "test"], default="dev")
    ap.add_argument("--n", type=int, default=None, help="clips (default: 176 dev, 264 test)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "int8"])
    add_json_arg(ap, "vocabulary_{split}_{precision}.json")
    args = ap.parse_args()

    from paraspeechclap import load_model

    model = load_model(args.model, precision=args.precision)
    folder, rows = build(args.split, args.n or CLIPS[args.split], args.jobs)
    results = {**model_fields(model), "split": args.split, "clips": len(rows), "version": VERSION,
               "groups": evaluate(model, folder, rows)}
    _print(results)
    write_results(json_path(args, precision=model.precision), results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
