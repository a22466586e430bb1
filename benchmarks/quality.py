"""Quality of a model on every evaluation set we have, with chance levels: one summary table.

Sets (``--split dev`` for choosing, ``--split test`` for reporting):

* ``synthetic``: clips synthesised with voices never used to train the default model. dev: two
  held-out eSpeak voices; test: four other held-out eSpeak voices plus every Kokoro voice (an
  engine the model never heard). Zero-shot UAR for pitch level, speaking rate, loudness,
  whispered-vs-voiced, voice quality, recording condition and gender; caption retrieval R@1/R@10.
* ``real``: the shared real emotional speech, speakers of the split (``paraspeechclap.data.splits``):
  4-class (angry/happy/saddened/neutral) and 8-class emotion UAR, gender UAR.
* ``real_repitched``: clips of the same real speakers moved by WORLD to a controlled pitch level
  relative to their gender's reference F0 (:mod:`paraspeechclap.synth.repitch`, the labels of the
  synthetic corpus): pitch level and gender UAR on natural voices, per gender too.
* ``real_retimed``: neutral clips of the same real speakers re-pitched and also re-timed by WORLD
  to a speaking-rate level relative to their own tempo (``speaking_rate`` in the repitch config):
  speaking rate (and pitch level) UAR on natural voices.
* ``real/<corpus>`` and ``synthetic/<engine>``: the same per corpus and per engine (UAR over the classes
  present, ``k/K`` of them). These corpora were partly heard in training (other speakers); for
  leave-one-corpus-out results run ``benchmarks/loco.py``.

    python benchmarks/quality.py --split test                 # the embedded default model
    python benchmarks/quality.py --model runs/lite/final --split dev --json out.json
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

#: Voices held out of the default model's training (configs/train/lite.yaml).
DEV_VOICES = ["espeak:en-us+m7", "espeak:en-us+f4"]
TEST_VOICES = ["espeak:en-gb-scotland+m2", "espeak:en-us+linda", "espeak:en-us+david", "espeak:en-us+grandma"]
REPITCH_SETS = ["pitch_level", "gender"]
RETIME_SETS = ["speaking_rate", "pitch_level"]
SYNTH_SETS = ["pitch_level", "speaking_rate", "loudness", "whisper", "voice_quality", "recording", "gender"]
REAL_SETS = ["emotion", "emotion8", "gender"]
MIN_GROUP = 8  # smaller groups (a corpus with a clip or two in the split) get no line of their own


def synthetic_manifest(split: str, n: int, jobs: int) -> Any:
    """Generate (once, cached) the held-out synthetic clips of ``split`` and load their manifest."""
    from paraspeechclap.data.manifest import load_manifest
    from paraspeechclap.synth import all_voices, find_voice, generate_corpus
    from paraspeechclap.synth.corpus import PLAN_VERSION
    from paraspeechclap.training.features import default_cache_root

    if split == "dev":
        voices, seed, mix = [find_voice(v) for v in DEV_VOICES], 1, {"espeak": 1.0}
    else:
        voices = [find_voice(v) for v in TEST_VOICES] + [v for v in all_voices() if v.engine == "kokoro"]
        seed, mix = 2, {"espeak": 0.6, "kokoro": 0.4}
    out = default_cache_root() / "quality" / f"synth-{split}-n{n}-s{seed}-v{PLAN_VERSION}"
    if not (out / "manifest.jsonl").is_file():
        generate_corpus(out, n, seed=seed, jobs=jobs, voices=voices, mix=mix)
    return load_manifest(out / "manifest.jsonl")


def repitched_manifest(split: str, n: int, jobs: int, speaking_rate: bool = False) -> Any:
    """Re-pitch (once, cached) ``n`` clips of the shared real data's ``split`` and load their manifest;
    with ``speaking_rate``, neutral clips only, re-timed too."""
    from paraspeechclap.data.manifest import load_manifest
    from paraspeechclap.data.splits import load_shared_manifest
    from paraspeechclap.training.config import RepitchConfig
    from paraspeechclap.training.data import ensure_repitched

    cfg = RepitchConfig(n=n, seed=1 if split == "dev" else 2, jobs=jobs, speaking_rate=speaking_rate)
    manifest = load_shared_manifest(split)
    if speaking_rate:
        manifest = manifest.filter(lambda r: r.get("emotion") == "neutral")
    return load_manifest(ensure_repitched(manifest, cfg))


def evaluate(model: Any, manifest: Any, sets: list[str], ensemble: bool, retrieval: bool,
             group_by: str | None = None, prefix: str = "synthetic") -> dict[str, Any]:
    """Zero-shot UAR per attribute set (+ chance), optionally caption retrieval, on one manifest.

    Clips are embedded once; with ``group_by`` (a row field, e.g. ``engine``) every value of that
    field with at least :data:`MIN_GROUP` clips also gets its own entry ``<prefix>/<value>``.

    Returns:
        ``{prefix: results, f"{prefix}/{value}": results, ...}``.
    """
    rows = [manifest[i] for i in range(len(manifest))]
    audio = model.embed_audio([str(manifest.audio_path(i)) for i in range(len(manifest))], batch_size=16)
    out = {prefix: _scores(model, audio, rows, sets, ensemble, retrieval)}
    for value in sorted({str(r.get(group_by)) for r in rows}) if group_by else []:
        keep = [i for i, r in enumerate(rows) if str(r.get(group_by)) == value]
        if len(keep) < MIN_GROUP:
            continue
        out[f"{prefix}/{value}"] = _scores(model, audio[keep], [rows[i] for i in keep], sets, ensemble, retrieval)
    return out


def _scores(model: Any, audio: Any, rows: list[dict[str, Any]], sets: list[str], ensemble: bool,
            retrieval: bool) -> dict[str, Any]:
    """One entry: per set, UAR over every candidate (official), UAR over the classes present, accuracy."""
    from paraspeechclap.data.attributes import get_attribute_set
    from paraspeechclap.data.captions import describe
    from paraspeechclap.training.evaluate import classification_scores, retrieval_scores

    out: dict[str, Any] = {"clips": len(rows)}
    for name in sets:
        m = classification_scores(audio, rows, model, name, ensemble)
        if m:
            aset = get_attribute_set(name)
            present = len({aset.gold(r) for r in rows} & set(aset.candidates))
            out[name] = {"uar": m[f"val/{name}/uar"], "uar_present": m[f"val/{name}/uar_present"],
                         "accuracy": m[f"val/{name}/accuracy"], "chance": 1.0 / len(aset.candidates),
                         "classes_present": present, "classes": len(aset.candidates),
                         "count": int(m[f"val/{name}/count"])}  # fmt: skip
    if retrieval:
        caps = [describe({k: r[k] for k in ("pitch_level", "speaking_rate", "loudness", "voice_quality", "clarity",
                                            "gender") if r.get(k)}) for r in rows]
        m = retrieval_scores(audio, caps, model)
        unique = round(1 / m["val/audio_to_text/chance_R@1"])
        out["retrieval"] = {"R@1": m["val/audio_to_text/R@1"], "R@10": m["val/audio_to_text/R@10"],
                            "chance_R@1": 1 / unique, "chance_R@10": min(1.0, 10 / unique), "captions": unique}
    return out


def print_table(results: dict[str, Any]) -> None:
    """One line per (set, metric). ``UAR`` is over the classes present in gold (``k/K`` of them);
    it equals the official UAR (absent classes count 0) when every class is present."""
    print(f"{'set':22s} {'metric':24s} {'value':>7s} {'chance':>7s} {'n':>6s} {'classes':>8s}")
    for set_name, res in results["sets"].items():
        for key, val in res.items():
            if key == "clips":
                continue
            if key == "retrieval":
                for k in ("R@1", "R@10"):
                    print(f"{set_name:22s} {'caption retrieval ' + k:24s} {val[k]:7.3f} {val['chance_' + k]:7.3f} "
                          f"{res['clips']:6d}")
            else:
                k = val["classes_present"]
                chance = 1.0 / max(k, 1)
                print(f"{set_name:22s} {key + ' UAR':24s} {val['uar_present']:7.3f} {chance:7.3f} {val['count']:6d} "
                      f"{k:>4d}/{val['classes']:<3d}")


def model_fields(model: Any) -> dict[str, Any]:
    """What identifies the scored model in a results file."""
    return {"model": model.model_id, "checksum": model.checksum, "precision": model.precision}


def report(model: Any, results: dict[str, Any], context: str, json_path: str | None) -> None:
    """Print the model line (with ``context``) and :func:`print_table`; write ``results`` as JSON when asked."""
    print(f"model {model.model_id} ({model.checksum[:12]}, {model.precision}), {context}")
    print_table(results)
    if json_path:
        from paraspeechclap.atomic import atomic_write_json

        atomic_write_json(json_path, results)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model to evaluate (default: the embedded default model)")
    ap.add_argument("--split", choices=["dev", "test"], default="dev")
    ap.add_argument("--synth-n", type=int, default=None, help="synthetic clips (default: 240 dev, 400 test)")
    ap.add_argument("--no-ensemble", action="store_true", help="one prompt per class instead of the ensemble")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "int8"],
                    help="inference precision (default auto: bf16 where the CPU computes it natively)")
    ap.add_argument("--json", default=None, metavar="OUT", help="also write the results as JSON")
    args = ap.parse_args()

    from paraspeechclap import load_model
    from paraspeechclap.data.splits import load_shared_manifest

    model = load_model(args.model, precision=args.precision)
    ensemble = not args.no_ensemble
    n = args.synth_n or (240 if args.split == "dev" else 400)
    results: dict[str, Any] = {**model_fields(model), "split": args.split, "prompt_ensemble": ensemble, "sets": {}}
    results["sets"].update(evaluate(model, synthetic_manifest(args.split, n, args.jobs), SYNTH_SETS, ensemble,
                                    retrieval=True, group_by="engine"))
    results["sets"].update(evaluate(model, load_shared_manifest(args.split), REAL_SETS, ensemble, retrieval=False,
                                    group_by="source", prefix="real"))
    results["sets"].update(evaluate(model, repitched_manifest(args.split, n, args.jobs), REPITCH_SETS, ensemble,
                                    retrieval=False, group_by="gender", prefix="real_repitched"))
    results["sets"].update(evaluate(model, repitched_manifest(args.split, n, args.jobs, speaking_rate=True),
                                    RETIME_SETS, ensemble, retrieval=False, prefix="real_retimed"))
    report(model, results, f"split {args.split}, {'prompt ensemble' if ensemble else 'single prompt'}", args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
