"""Best-of-N reranking, measured offline: tag recall of the chosen candidate, and speed.

Data: the style-prompted mode of ``paraspeechclap.synth`` writes ``--prompts`` random prompts
x ``--candidates`` candidates in the official best-of-N layout; each prompted attribute (gender
included) is realised as prompted with probability ``--p-match`` (0.5), so each candidate's true
tags are known. The voices default to the default model's held-out test voices
(:data:`paraspeechclap.synth.engines.HELD_OUT_VOICES`), speaking the test sentences, which no training
corpus speaks; pass ``--voices`` to match another model's held-out set.

Tag recall of a candidate = the share of the prompt's style tags (``labels_to_tags`` of the
prompted labels: pitch, rate, loudness, voice quality, clarity; gender is not a tag) that the
candidate realises. Prompts without a style tag are left out of the tag recall. ``field match``
is the same share over every prompted field, gender included. Reported per chooser:

- ``first``: candidate 1 (no reranking); ``random``: the expected value of a uniform choice;
- ``reranker``: the model's choice (``best_of_n``, exactly what ``paraspeechclap rerank`` does);
- ``oracle``: the best possible choice.

``gap_closed = (reranker - random) / (oracle - random)``; the target is >= 0.5. A 95% bootstrap
interval over prompts is given for ``reranker - random``.

Speed: N = 10 candidates of 5 s (speech from the set, tiled to 5 s) reranked against a fresh prompt,
embedding and text encoding included, model loading excluded; median over ``--speed-reps`` runs.

    python benchmarks/rerank.py                     # the default model, 200 prompts x 10 -> results/rerank_fp32.json
    python benchmarks/rerank.py --model /tmp/tiny --prompts 10 --candidates 4   # smoke test
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from paraspeechclap.cli.common import print_table
from paraspeechclap.data.vocabulary import labels_to_tags
from paraspeechclap.pretrained import load_model
from paraspeechclap.reranking import StyleScorer, best_of_n, load_official
from paraspeechclap.synth.corpus import PLAN_VERSION
from paraspeechclap.synth.engines import select_voices
from paraspeechclap.synth.prompted import random_prompts, write_rerank_set
from paraspeechclap.training.features import default_cache_root

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_json_arg, json_path, write_results  # noqa: E402

#: the candidates' sentence pool: no training corpus speaks these
SENTENCES = "test"
CHOOSERS = ("first", "random", "reranker", "oracle")
SPEED_SECONDS = 5.0


def make_data(args: argparse.Namespace) -> Path:
    """Synthesise (or reuse) the candidate set; returns its folder."""
    voices = select_voices(voices=[v for v in args.voices.split(",") if v])
    key = json.dumps([args.prompts, args.candidates, args.p_match, args.seed, sorted(v.id for v in voices),
                      PLAN_VERSION, SENTENCES])  # a new generator version never reuses old candidates
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    out = Path(args.data_dir) if args.data_dir else default_cache_root() / "rerank_bench" / digest
    t0 = time.perf_counter()
    summary = write_rerank_set(out, random_prompts(args.prompts, args.seed), args.candidates, args.p_match, args.seed,
                               args.jobs, voices, sentences=SENTENCES)  # fmt: skip
    print(f"data: {out} ({summary['generated']} clips generated in {time.perf_counter() - t0:.1f} s, "
          f"prompted fields realised: {summary['match_rate']})", file=sys.stderr)
    return out


def truth(data: Path, n_prompts: int, n_cands: int) -> tuple[np.ndarray, np.ndarray]:
    """``(P, N)`` tag recall (NaN rows: prompt without style tags) and field-match fraction."""
    prompts = [json.loads(line) for line in (data / "prompts.jsonl").read_text().splitlines()]
    recall, match = np.full((n_prompts, n_cands), np.nan), np.full((n_prompts, n_cands), np.nan)
    for line in (data / "candidates.jsonl").read_text().splitlines():
        row = json.loads(line)
        i, k = row["prompt_index"], row["candidate"]
        wanted = {t for tags in labels_to_tags(prompts[i]["labels"]) for t in tags}
        got = set(row["intrinsic_tags"]) | set(row["situational_tags"])
        if wanted:
            recall[i, k] = len(wanted & got) / len(wanted)
        match[i, k] = row["match_fraction"]
    return recall, match


def choosers(values: np.ndarray, chosen: np.ndarray, rng: np.random.Generator, boots: int = 2000) -> dict:
    """Mean value per chooser over prompts with values, the gap closed and a bootstrap interval."""
    rows = ~np.isnan(values).any(axis=1)
    v, c = values[rows], chosen[rows]
    per = {"first": v[:, 0], "random": v.mean(axis=1), "reranker": v[np.arange(len(v)), c], "oracle": v.max(axis=1)}
    out = {name: float(per[name].mean()) for name in CHOOSERS}
    span = out["oracle"] - out["random"]
    out["gap_closed"] = (out["reranker"] - out["random"]) / span if span > 0 else None
    diff = per["reranker"] - per["random"]
    idx = rng.integers(0, len(diff), (boots, len(diff)))
    lo, hi = np.percentile(diff[idx].mean(axis=1), [2.5, 97.5])
    out["reranker_minus_random_ci95"] = [float(lo), float(hi)]
    out["prompts"] = int(rows.sum())
    return out


def speed(model, data: Path, n: int, reps: int, batch_size: int) -> dict:
    """Seconds to rerank ``n`` candidates of 5 s (text + audio embedding), median over ``reps``."""
    import soundfile as sf

    rset = load_official(data)
    wavs = []
    for k in range(n):
        wav, _ = sf.read(str(rset.candidates[k % len(rset.candidates)][k % len(rset.candidates[0])]), dtype="float32")
        wavs.append(np.resize(wav, int(SPEED_SECONDS * 16000)))  # tile the clip to exactly 5 s
    scorer = StyleScorer(model, batch_size=batch_size)
    scorer.score(f"{rset.prompts[0]} (warm-up)", wavs)
    times = []
    for r in range(reps):
        t0 = time.perf_counter()
        scorer.score(f"{rset.prompts[r % len(rset.prompts)]} (take {r})", wavs)  # a fresh caption: text encoded too
        times.append(time.perf_counter() - t0)
    return {"candidates": n, "seconds_each": SPEED_SECONDS, "median_s": float(np.median(times)),
            "min_s": float(min(times)), "reps": reps, "batch_size": batch_size, "threads": _threads()}  # fmt: skip


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=200)
    ap.add_argument("--candidates", type=int, default=10)
    ap.add_argument("--p-match", type=float, default=0.5)
    ap.add_argument("--voices", default="held-out:test",
                    help="voices of the candidates (default: held-out:test, the default model's held-out test voices)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--data-dir", help="where the candidates go (default: a cache folder keyed by the settings)")
    ap.add_argument("--model", default=None, help="model name or directory (default: the embedded default)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--speed-reps", type=int, default=5)
    ap.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "int8"])
    add_json_arg(ap, "rerank_{precision}.json")
    args = ap.parse_args()

    data = make_data(args)
    t0 = time.perf_counter()
    model = load_model(args.model, precision=args.precision)
    load_s = time.perf_counter() - t0
    rset = load_official(data)
    t0 = time.perf_counter()
    sels = best_of_n(model, rset.prompts, rset.candidates, progress=True)
    rerank_s = time.perf_counter() - t0
    chosen = np.array([s.best if s.best is not None else 0 for s in sels])
    recall, match = truth(data, len(rset.prompts), args.candidates)
    rng = np.random.default_rng(args.seed)
    result = {
        "settings": {**{k: getattr(args, k) for k in ("prompts", "candidates", "p_match", "voices", "seed")},
                     "sentences": SENTENCES},
        "data_dir": str(data), "model": {"id": model.model_id, "checksum": model.checksum,
                                            "precision": model.precision, "load_s": round(load_s, 2)},
        "tag_recall": choosers(recall, chosen, rng), "field_match": choosers(match, chosen, rng),
        "rerank_all_s": round(rerank_s, 2), "issues": sum(len(s.issues) for s in sels),
        "speed": speed(model, data, 10, args.speed_reps, args.batch_size),
    }  # fmt: skip
    gap = result["tag_recall"]["gap_closed"]
    result["closes_half_gap"] = bool(gap is not None and gap >= 0.5)
    rows = [[name, result["tag_recall"][name], result["field_match"][name]] for name in CHOOSERS]
    print_table(["chooser", "tag recall", "field match (+gender)"], rows)
    tr = result["tag_recall"]
    print(f"\nmodel {model.model_id}: {tr['prompts']} prompts x {args.candidates} candidates; reranker - random = "
          f"{tr['reranker'] - tr['random']:+.4f} (95% CI {tr['reranker_minus_random_ci95'][0]:+.4f} .. "
          f"{tr['reranker_minus_random_ci95'][1]:+.4f}); gap closed = {gap if gap is None else round(gap, 3)} -> "
          f"{'closes' if result['closes_half_gap'] else 'does NOT close'} at least half of the random-to-best gap")
    sp = result["speed"]
    print(f"speed: {sp['candidates']} candidates x {sp['seconds_each']:.0f} s reranked in {sp['median_s']:.3f} s "
          f"(median of {sp['reps']}, {sp['threads']} threads, model loading excluded: {load_s:.1f} s)")
    write_results(json_path(args, precision=model.precision), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
