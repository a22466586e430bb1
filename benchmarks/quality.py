"""Quality of a model on every evaluation set we have, with chance levels: one summary table.

Sets (``--split dev`` for choosing, ``--split test`` for reporting):

* ``synthetic``: clips synthesised with voices never used to train the default model, speaking
  sentences no training corpus speaks (each split has its own pool). dev: two held-out eSpeak
  voices; test: four other held-out eSpeak voices plus every Kokoro voice (an engine the model
  never heard). Zero-shot UAR for pitch level, speaking rate, loudness,
  whispered-vs-voiced, voice quality, recording condition and gender; caption retrieval R@1/R@10.
* ``real``: the shared real emotional speech, speakers of the split (``paraspeechclap.data.splits``):
  4-class (angry/happy/saddened/neutral) and 8-class emotion UAR, gender UAR, and whispered vs voiced (the
  recordings are voiced: how many a model calls whispered).
* ``real_repitched``: clips of the same real speakers moved by WORLD to a controlled pitch level
  relative to their gender's reference F0 (:mod:`paraspeechclap.synth.repitch`, the labels of the
  synthetic corpus): pitch level and gender UAR on natural voices, per gender too.
* ``real_retimed``: neutral clips of the same real speakers re-pitched and also re-timed by WORLD
  to a speaking-rate level relative to their own tempo (``speaking_rate`` in the repitch config):
  speaking rate (and pitch level) UAR on natural voices.
* ``official_tags``: the official intrinsic sets (pitch, texture, volume, clarity, rhythm) over the tags the
  synthetic recipes produce (:mod:`paraspeechclap.synth.tags`), on ``benchmarks/vocabulary.py``'s clips (the
  split's held-out voices; test also every Kokoro voice): UAR among the produced tags (``uar_official``:
  among all of the set's official candidates) and two-tag caption retrieval R@1/R@10 (``retrieval``;
  ``text_to_audio`` too); ``official_tags/<engine>`` per engine.
* ``real/<corpus>``, ``synthetic/<engine>`` and ``synthetic/voice=<name>``: the same per corpus, engine
  and voice (UAR over the classes present, ``k/K`` of them; each entry keeps its confusion matrix).
  These corpora were partly heard in training (other speakers); for leave-one-corpus-out results run
  ``benchmarks/loco.py``.

    python benchmarks/quality.py --split test          # the default model -> results/quality_test_fp32.json
    python benchmarks/quality.py --model runs/lite/final --split dev --json out.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    add_json_arg,
    attribute_scores,
    group_centred,
    json_path,
    model_fields,
    row_speakers,
    write_results,
)

REPITCH_SETS = ["pitch_level", "gender"]
RETIME_SETS = ["speaking_rate", "pitch_level"]
SYNTH_SETS = ["pitch_level", "speaking_rate", "loudness", "whisper", "voice_quality", "recording", "gender"]
REAL_SETS = ["emotion", "emotion8", "gender", "whisper"]  # whisper: recordings called whispered (voiced recall)
MIN_GROUP = 8  # smaller groups (a corpus with a clip or two in the split) get no line of their own
#: clips per split of the synthetic held-out sets
SYNTH_N = {"dev": 240, "test": 400}


def synthetic_manifest(split: str, n: int, jobs: int) -> Any:
    """Generate (once, cached) the held-out synthetic clips of ``split`` and load their manifest.

    Voices: the split's held-out voices (:data:`paraspeechclap.synth.engines.HELD_OUT_VOICES`), for
    test also every Kokoro voice (an engine the default model never heard); sentences: the split's
    own pool, which no training corpus speaks (:data:`paraspeechclap.synth.sentences.SENTENCE_POOLS`).
    """
    from paraspeechclap.data.manifest import load_manifest
    from paraspeechclap.synth import evaluation_voices, generate_corpus
    from paraspeechclap.synth.corpus import PLAN_VERSION
    from paraspeechclap.training.features import default_cache_root

    voices = evaluation_voices(split)
    seed, mix = (1, {"espeak": 1.0}) if split == "dev" else (2, {"espeak": 0.6, "kokoro": 0.4})
    out = default_cache_root() / "quality" / f"synth-{split}-n{n}-s{seed}-v{PLAN_VERSION}-{split}-sentences"
    if not (out / "manifest.jsonl").is_file():
        generate_corpus(out, n, seed=seed, jobs=jobs, voices=voices, mix=mix, sentences=split)
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
             group_by: Sequence[str] = (), prefix: str = "synthetic", centred: bool = False) -> dict[str, Any]:
    """Zero-shot scores per attribute set (+ chance), optionally caption retrieval, on one manifest.

    Clips are embedded once; every value of each ``group_by`` field (e.g. ``engine``, ``voice``) with at
    least :data:`MIN_GROUP` clips also gets its own entry ``<prefix>/<field>=<value>`` (``engine`` and
    ``source`` keep the short ``<prefix>/<value>``). With ``centred``, also ``<prefix>/center=speaker``
    (each clip centred on its speaker's mean) and ``<prefix>/center=collection`` (on its corpus's mean).

    Returns:
        ``{prefix: results, f"{prefix}/{value}": results, ...}``.
    """
    rows = [manifest[i] for i in range(len(manifest))]
    paths = [str(manifest.audio_path(i)) for i in range(len(manifest))]
    # centred scores need the pooled features too: pool once and project them (what embed_audio computes)
    pooled = model.pool_audio(paths, batch_size=16) if centred else None
    audio = model.embed_audio(paths, batch_size=16) if pooled is None else model.embed_pooled(pooled)
    out = {prefix: scores(model, audio, rows, sets, ensemble, retrieval)}
    if pooled is not None:
        out.update(centred_scores(model, audio, pooled, rows, sets, ensemble, prefix))
    for field in group_by:
        for value in sorted({str(r.get(field)) for r in rows}):
            keep = [i for i, r in enumerate(rows) if str(r.get(field)) == value]
            if len(keep) < MIN_GROUP:
                continue
            key = f"{prefix}/{value}" if field in ("engine", "source") else f"{prefix}/{field}={value}"
            out[key] = scores(model, audio[keep], [rows[i] for i in keep], sets, ensemble, retrieval)
    return out


def centred_scores(model: Any, audio: Any, pooled: Any, rows: list[dict[str, Any]], sets: list[str], ensemble: bool,
                   prefix: str) -> dict[str, Any]:
    """Scores with each clip centred on its speaker's mean, as ``center="speaker"`` computes it (through the
    model's centred head when it has one; ``pooled``: the clips' pooled features), and on its corpus's
    (``source``) mean, as ``center="collection"`` does per corpus (the main head). A speaker or corpus of one
    clip is centred on the mean of all clips."""
    by_corpus = [str(r["source"]) for r in rows]  # a collection is one corpus: its room and microphone
    speaker = model.embed_pooled(pooled, "speaker", row_speakers(rows), reference=pooled)
    return {f"{prefix}/center={mode}": scores(model, emb, rows, sets, ensemble, retrieval=False)
            for mode, emb in (("speaker", speaker), ("collection", group_centred(audio, by_corpus)))}


def scores(model: Any, audio: Any, rows: list[dict[str, Any]], sets: list[str], ensemble: bool,
           retrieval: bool) -> dict[str, Any]:
    """One entry: ``clips``, per set :func:`common.attribute_scores`, and caption retrieval if asked."""
    out: dict[str, Any] = {"clips": len(rows)}
    for name in sets:
        m = attribute_scores(model, audio, rows, name, ensemble)
        if m:
            out[name] = m
    if retrieval:
        out["retrieval"] = caption_retrieval(model, audio, rows)
    return out


def caption_retrieval(model: Any, audio: Any, rows: list[dict[str, Any]]) -> dict[str, float]:
    """Audio-to-text R@1 / R@10 against the canonical caption of each clip's labels (de-duplicated)."""
    from paraspeechclap.data.captions import describe
    from paraspeechclap.training.evaluate import retrieval_scores

    fields = ("pitch_level", "speaking_rate", "loudness", "voice_quality", "clarity", "gender")
    caps = [describe({k: r[k] for k in fields if r.get(k)}) for r in rows]
    m = retrieval_scores(audio, caps, model)
    unique = round(1 / m["val/audio_to_text/chance_R@1"])
    return {"R@1": m["val/audio_to_text/R@1"], "R@10": m["val/audio_to_text/R@10"],
            "chance_R@1": 1 / unique, "chance_R@10": min(1.0, 10 / unique), "captions": unique}


def official_tags(model: Any, split: str, jobs: int) -> dict[str, Any]:
    """The official sets over the produced tags and two-tag caption retrieval (``benchmarks/vocabulary.py``'s
    clips and scores), as entries of this table: ``{"official_tags": ..., "official_tags/<engine>": ...}``."""
    import vocabulary

    folder, rows = vocabulary.build(split, vocabulary.CLIPS[split], jobs)
    out: dict[str, Any] = {}
    for group, res in vocabulary.evaluate(model, folder, rows).items():
        ret = res["retrieval"]
        key = "official_tags" if group == "all" else f"official_tags/{group.split('=', 1)[1]}"
        out[key] = {"clips": ret["clips"], **res["sets"],
                    "retrieval": {"R@1": ret["audio_to_text"]["R@1"], "R@10": ret["audio_to_text"]["R@10"],
                                  "chance_R@1": ret["chance_r1"], "chance_R@10": ret["chance_r10"],
                                  "captions": ret["captions"], "text_to_audio": ret["text_to_audio"]}}
    return out


def print_table(results: dict[str, Any]) -> None:
    """One line per (set, metric). ``UAR`` is over the classes present in gold (``k/K`` of them);
    it equals the official UAR (absent classes count 0) when every class is present."""
    print(f"{'set':34s} {'metric':24s} {'value':>7s} {'chance':>7s} {'n':>6s} {'classes':>8s}")
    for set_name, res in results["sets"].items():
        for key, val in res.items():
            if key == "clips":
                continue
            if key == "retrieval":
                for k in ("R@1", "R@10"):
                    print(f"{set_name:34s} {'caption retrieval ' + k:24s} {val[k]:7.3f} {val['chance_' + k]:7.3f} "
                          f"{res['clips']:6d}")
            else:
                k = val["classes_present"]
                print(f"{set_name:34s} {key + ' UAR':24s} {val['uar_present']:7.3f} {1.0 / max(k, 1):7.3f} "
                      f"{val['count']:6d} {k:>4d}/{val['classes']:<3d}")


def report(model: Any, results: dict[str, Any], context: str, path: Path) -> None:
    """Print the model line (with ``context``) and :func:`print_table`; write ``results`` as JSON."""
    print(f"model {model.model_id} ({model.checksum[:12]}, {model.precision}), {context}")
    print_table(results)
    write_results(path, results)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model to evaluate (default: the embedded default model)")
    ap.add_argument("--split", choices=["dev", "test"], default="dev")
    ap.add_argument("--synth-n", type=int, default=None, help="synthetic clips (default: 240 dev, 400 test)")
    ap.add_argument("--no-ensemble", action="store_true", help="one prompt per class instead of the ensemble")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "int8"],
                    help="inference precision (default fp32: the reference numbers, the same on every CPU)")
    add_json_arg(ap, "quality_{split}_{precision}.json")
    args = ap.parse_args()

    from paraspeechclap import load_model
    from paraspeechclap.data.splits import load_shared_manifest

    model = load_model(args.model, precision=args.precision)
    ensemble = not args.no_ensemble
    n = args.synth_n or SYNTH_N[args.split]
    results: dict[str, Any] = {**model_fields(model), "split": args.split, "prompt_ensemble": ensemble, "sets": {}}
    results["sets"].update(evaluate(model, synthetic_manifest(args.split, n, args.jobs), SYNTH_SETS, ensemble,
                                    retrieval=True, group_by=("engine", "voice")))
    results["sets"].update(evaluate(model, load_shared_manifest(args.split), REAL_SETS, ensemble, retrieval=False,
                                    group_by=("source",), prefix="real", centred=True))
    results["sets"].update(evaluate(model, repitched_manifest(args.split, n, args.jobs), REPITCH_SETS, ensemble,
                                    retrieval=False, group_by=("gender",), prefix="real_repitched"))
    results["sets"].update(evaluate(model, repitched_manifest(args.split, n, args.jobs, speaking_rate=True),
                                    RETIME_SETS, ensemble, retrieval=False, prefix="real_retimed"))
    results["sets"].update(official_tags(model, args.split, args.jobs))
    context = f"split {args.split}, {'prompt ensemble' if ensemble else 'single prompt'}"
    report(model, results, context, json_path(args, precision=model.precision))
    return 0


if __name__ == "__main__":
    sys.exit(main())
