"""Leave-one-corpus-out (LOCO): how a recipe does on real corpora it never heard, plain and centred.

For each corpus of the shared real speech (``real``, ``real2``, ``real3``) with at least ``--min-clips``
clips, the model that never heard it is scored on all of its clips:

- a corpus the recipe trains on: the recipe trained with every clip of that corpus removed from the
  training *and* dev sources (``exclude: {source: [corpus]}``, so model selection never sees it; its
  re-pitched and re-timed clips go too, dropped from the full recipe's derived corpora, which are
  rendered and cached once for every fold);
- a corpus the recipe never reads (``real3`` for the v15 recipe): the recipe's full model
  (``--full-model``, default the embedded one, which is the v15 recipe's).

Each corpus is scored zero-shot three ways: ``plain`` (each clip alone), ``speaker`` (each clip
centred on its speaker's mean embedding; a speaker with one clip on the corpus's mean) and
``collection`` (on the corpus's mean; :mod:`paraspeechclap.centering`). Metrics: 4-class emotion
UAR (angry, happy, saddened, neutral; over the classes present), 8-class UAR (the project's 8-way
set over the classes present) and the recall of each of the four classes.

The summary (the development signal) averages over corpora with at least 3 of the 4 classes, except
``emospeech_in`` (noisy self-labels) and ``ucm_es`` (kept out of recipe selection: scored for the record,
never chosen on), which are reported apart, as are corpora with fewer classes. Speaker centring is
also measured on skewed per-speaker subsets (one class 1/3 to 2/3 of a speaker's clips) and against
1, 2, 4, 8 and 16 neutral reference clips per speaker (the other clips centred on their mean).

    python benchmarks/loco.py --max-steps 1000              # -> benchmarks/results/loco.json
    python benchmarks/loco.py --corpora emodb,ucm_es --max-steps 300 --json /tmp/loco.json

Each left-out fold also records its last dev evaluation (``per_corpus[c]["dev"]``, averaged over the
summary corpora in ``dev_summary``): the unseen speakers of the corpora it trained on, i.e. what a recipe
costs or gains in-corpus, measured on the same folds.

Runs are kept in ``--runs`` (a finished corpus is not retrained, unless its saved ``config.yaml`` is another
recipe's, which stops the run; ``folds_reused`` lists those, whose
training ``wall_s`` does not include); ``PARASPEECHCLAP_CACHE`` pointing at a
warm cache (e.g. the folder ``benchmarks/rebuild.py`` used) skips synthesis and feature caching.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import (  # noqa: E402
    add_json_arg,
    json_path,
    mean_present,
    pooled_rows,
    pooled_table,
    row_speakers,
    write_results,
)

MODES = ("plain", "speaker", "collection")
RECALL = {"neutral": "neutral", "sad": "saddened", "happy": "happy", "angry": "angry"}
APART = {"emospeech_in": "noisy self-labels", "ucm_es": "kept out of recipe selection"}
REFERENCE_COUNTS = (1, 2, 4, 8, 16)


def corpora(min_clips: int) -> list[str]:
    """Corpora of the shared real speech (every batch) with at least ``min_clips`` clips."""
    from paraspeechclap.data.splits import load_shared_manifest

    counts = Counter(r["source"] for r in load_shared_manifest(batches="all"))
    return sorted(c for c, n in counts.items() if n >= min_clips)


def recipe_corpora(config: str) -> set[str]:
    """The corpora the recipe's real-speech training sources read (before any ``exclude``)."""
    from paraspeechclap.data.manifest import load_manifest
    from paraspeechclap.training.config import load_config

    cfg = load_config(config)
    paths = {src.manifest for src in cfg.data.train if src.manifest is not None}
    return {r["source"] for p in paths for r in load_manifest(p)}


def fold_finished(out_dir: Path) -> bool:
    """Whether a left-out run already saved its final model (so :func:`train_without` reuses it)."""
    return (out_dir / "final" / "config.json").is_file()


def train_without(corpus: str, config: str, out_dir: Path, max_steps: int | None) -> Path:
    """Train the recipe with ``corpus`` excluded from every real source; returns the final model folder."""
    from paraspeechclap.training.config import load_config
    from paraspeechclap.training.loop import train

    final = out_dir / "final"
    cfg = load_config(config)
    for src in [*cfg.data.train, *cfg.data.dev]:
        if src.manifest is None:
            continue
        # re-pitched sources drop the left-out corpus's derived clips *after* deriving: the derived
        # corpus (and its feature cache) stays the full recipe's, so a fold only trains
        where = src.repitch if src.repitch is not None else src
        where.exclude = {**where.exclude, "source": [*where.exclude.get("source", []), corpus]}
    cfg.train.output_dir = str(out_dir)
    cfg.train.progress = False
    if max_steps:
        cfg.train.max_steps = max_steps
        cfg.eval.every_steps = max_steps  # one dev evaluation, at the end: no checkpoint selection
    if fold_finished(out_dir):  # resume a half-finished sweep without retraining, if it is this recipe's fold
        check_same_fold(out_dir, cfg, config)
        return final
    train(cfg)
    return final


#: config keys that name a run or say where and how it is shown, not what it trains
RUN_ONLY = {"model.name", "train.output_dir", "train.progress"}


def check_same_fold(out_dir: Path, cfg: Any, config: str) -> None:
    """Refuse a finished fold folder whose saved ``config.yaml`` differs from the fold ``cfg`` would train
    (another recipe, seed or step count in the same ``--runs``). Only keys both have are compared, so a
    fold saved before a config field existed (or after one was removed) still counts."""
    import yaml

    from paraspeechclap.training.config import config_to_yaml

    saved = _flat(yaml.safe_load((out_dir / "config.yaml").read_text(encoding="utf-8")) or {})
    now = _flat(yaml.safe_load(config_to_yaml(cfg)))
    differ = sorted(k for k in saved if k in now and now[k] != saved[k] and k not in RUN_ONLY)
    if differ:
        raise SystemExit(f"{out_dir}: a finished fold of another config than {config} ({', '.join(differ[:3])}"
                         f"{', ...' if len(differ) > 3 else ''} differ); use another --runs folder")


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings and lists of mappings -> ``{"data.train.0.synth.n": value}``."""
    if isinstance(tree, list) and tree and all(isinstance(v, dict) for v in tree):
        tree = {str(i): v for i, v in enumerate(tree)}
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}{k}."))
    return out


def fold_dev(run_dir: Path) -> dict[str, float]:
    """A fold's last dev evaluation (its ``metrics.jsonl``): the UARs and R@1 on the unseen speakers of the
    corpora it trained on, i.e. what a recipe costs or gains in-corpus, fold by fold."""
    import json

    last: dict[str, float] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if any(k.startswith("val/") for k in row):
            last = row
    return {k[4:]: float(v) for k, v in sorted(last.items()) if k.endswith(("/uar", "/R@1"))}


# -- scoring ----------------------------------------------------------------------------------------
def _scores(model: Any, emb: np.ndarray, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """4- and 8-class emotion UAR (classes present) and the 4 classes' recall of embedded clips."""
    from paraspeechclap.evaluation.classification import score_attribute_set

    s4, s8 = score_attribute_set(model, emb, rows, "emotion"), score_attribute_set(model, emb, rows, "emotion8")
    out: dict[str, Any] = {"uar4": None, "classes4": 0, "uar8": None, "classes8": 0, "clips4": 0,
                           "recall": dict.fromkeys(RECALL)}
    if s4 is not None:
        conf = np.asarray(s4["confusion"])
        for name, label in RECALL.items():
            i = s4["labels"].index(label)
            out["recall"][name] = float(conf[i, i] / conf[i].sum()) if conf[i].sum() else None
        out.update(uar4=s4["uar_present"], classes4=s4["classes_present"], clips4=s4["count"])
    if s8 is not None:
        out.update(uar8=s8["uar_present"], classes8=s8["classes_present"])
    return out


def centred(model: Any, pooled: np.ndarray, emb: np.ndarray, mode: str, speakers: list[str]) -> np.ndarray:
    """The ``(N, D)`` embeddings of ``N`` clips (``pooled``, ``(N, H)``; ``emb`` their plain embeddings) as ``mode``
    leaves them, as ``center=`` computes them (speaker centring through the model's centred head when it has one);
    a speaker with a single clip is centred on the mean of all ``N``."""
    if mode == "plain":
        return emb
    if mode == "speaker":
        return model.embed_pooled(pooled, "speaker", speakers, reference=pooled)
    return model.embed_pooled(pooled, mode)


def score_corpus(model: Any, rows: list[dict[str, Any]], pooled: np.ndarray) -> dict[str, Any]:
    """Every mode's scores on all clips of one corpus (``pooled``: their ``(N, H)`` pooled features), plus the
    skewed and reference analyses."""
    from paraspeechclap.data.attributes import get_attribute_set

    speakers = row_speakers(rows)
    emb = model.embed_pooled(pooled)
    out = {mode: _scores(model, centred(model, pooled, emb, mode, speakers), rows) for mode in MODES}
    out["clips"], out["speakers"] = len(rows), len(set(speakers))
    gold = [get_attribute_set("emotion").gold(r) for r in rows]  # 4-class labels, for choosing subsets
    out["skewed"] = skewed_subsets(model, pooled, emb, rows, speakers, gold)
    out["reference_clips"] = reference_curve(model, emb, rows, speakers, gold)
    return out


def fold_train_rows(table: dict[str, Any], corpus: str, trained_on: set[str]) -> list[int]:
    """Indices into ``table["rows"]`` of the clips a fold's centred head is fitted on: the train-split rows with a
    speaker id of the corpora the fold trained on (``corpus`` left out)."""
    from paraspeechclap.centering import has_speaker_id
    from paraspeechclap.data.splits import split_of

    return [i for i, r in enumerate(table["rows"]) if r["source"] != corpus and r["source"] in trained_on
            and split_of(r) == "train" and has_speaker_id(r.get("speaker"))]


def fold_fit_data(model: Any, table: dict[str, Any], corpus: str,
                  trained_on: set[str]) -> tuple[np.ndarray, list[str], list[str | None]]:
    """What a fold's centred head is fitted on (:func:`paraspeechclap.centred_head.fit_centred_head`'s ``pooled``,
    ``speakers`` and 8-class ``gold``), from the rows of :func:`fold_train_rows`."""
    from paraspeechclap.centred_head import CentredHeadFit
    from paraspeechclap.data.attributes import get_attribute_set

    aset, rows, idx = get_attribute_set(CentredHeadFit().attribute), table["rows"], fold_train_rows(table, corpus,
                                                                                                    trained_on)
    return (pooled_rows(model, table, idx), [str(rows[i]["speaker"]) for i in idx],
            [aset.gold(rows[i]) for i in idx])


def fit_fold_head(model: Any, table: dict[str, Any], corpus: str, trained_on: set[str]) -> dict[str, Any]:
    """Fit ``model``'s centred head as ``paraspeechclap fit-centred-head --split-file shared --split train`` fits the
    shipped one (its defaults), on :func:`fold_fit_data`."""
    from paraspeechclap.centred_head import fit_centred_head

    info = fit_centred_head(model, *fold_fit_data(model, table, corpus, trained_on))
    return {k: info[k] for k in ("clips", "rows", "speakers", "loss")}


def skewed_subsets(model: Any, pooled: np.ndarray, emb: np.ndarray, rows: list[dict[str, Any]], speakers: list[str],
                   gold: list[str | None], seed: int = 0) -> dict[str, Any] | None:
    """Plain vs speaker-centred UAR when each speaker's clips are skewed towards one class.

    For each of the four classes in turn, every speaker keeps all clips of that class and a random
    share of the others so that the class is 1/3 to 2/3 of the speaker's clips (drawn per speaker).
    """
    rng = np.random.default_rng(seed)
    res: dict[str, list[float]] = {"plain": [], "speaker": []}
    for label in RECALL.values():
        keep: list[int] = []
        for spk in sorted(set(speakers)):
            idx = [i for i, s in enumerate(speakers) if s == spk and gold[i] is not None]
            mine = [i for i in idx if gold[i] == label]
            rest = [i for i in idx if gold[i] != label]
            if not mine or not rest:
                continue
            share = rng.uniform(1 / 3, 2 / 3)  # the skewed class's share of this speaker's clips
            n_rest = min(len(rest), max(1, round(len(mine) * (1 - share) / share)))
            keep += mine + [int(i) for i in rng.choice(rest, n_rest, replace=False)]
        if len({speakers[i] for i in keep}) < 2:
            continue
        sub = [rows[i] for i in keep]
        for mode in res:
            s = _scores(model, centred(model, pooled[keep], emb[keep], mode, [speakers[i] for i in keep]), sub)
            if s["uar4"] is not None and s["classes4"] >= 3:
                res[mode].append(s["uar4"])
    if not res["plain"]:
        return None
    return {mode: {"uar4_mean": float(np.mean(v)), "subsets": len(v)} for mode, v in res.items()}


def reference_curve(model: Any, emb: np.ndarray, rows: list[dict[str, Any]], speakers: list[str],
                    gold: list[str | None]) -> dict[str, Any] | None:
    """4-class UAR with each speaker's other clips centred on k of their neutral clips as ``reference=`` centres
    them (:func:`neutral_reference_curve` with ``l2(x - mean(R))`` of the embeddings ``emb``)."""
    from paraspeechclap.centering import center_embeddings

    return neutral_reference_curve(model, rows, speakers, gold,
                                   lambda other, ref: center_embeddings(emb[other], "none", reference=emb[ref])[0])


def neutral_reference_curve(model: Any, rows: list[dict[str, Any]], speakers: list[str], gold: list[str | None],
                            centre: Callable[[list[int], list[int]], np.ndarray]) -> dict[str, Any] | None:
    """4-class UAR (per k in :data:`REFERENCE_COUNTS`) with each speaker's other clips centred on k of their
    neutral clips (first k in manifest order; a speaker with fewer than k + 1 neutral clips uses what it has, at
    least one); the reference clips themselves are not scored. ``centre(other, ref)`` gives the ``(len(other),
    D)`` centred embeddings of clips ``other`` against reference clips ``ref`` (indices into ``rows``)."""
    out = {}
    for k in REFERENCE_COUNTS:
        parts, scored = [], []
        for spk in sorted(set(speakers)):
            idx = [i for i, s in enumerate(speakers) if s == spk]
            neutral = [i for i in idx if gold[i] == "neutral"]
            if len(neutral) < 2:
                continue
            ref = neutral[: min(k, len(neutral) - 1)]
            other = [i for i in idx if i not in ref]
            parts.append(centre(other, ref))
            scored += other
        if not scored:
            return None
        s = _scores(model, np.concatenate(parts), [rows[i] for i in scored])
        out[str(k)] = s["uar4"]
    return out


# -- summary ----------------------------------------------------------------------------------------
def summarize(per_corpus: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Mean and minimum 4-class UAR, mean 8-class UAR and mean recalls over ``names``, per mode."""
    return {mode: summary_of([per_corpus[c][mode] for c in names]) for mode in MODES}


def summary_of(got: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and minimum 4-class UAR, mean 8-class UAR and mean recalls of several corpora's :func:`_scores`."""
    uar4 = [g["uar4"] for g in got if g["uar4"] is not None]
    recall = {k: [g["recall"][k] for g in got if g["recall"][k] is not None] for k in RECALL}
    return {"uar4_mean": mean_present(uar4), "uar4_min": min(uar4, default=None),
            "uar8_mean": mean_present([g["uar8"] for g in got]),
            "recall": {k: mean_present(v) for k, v in recall.items()}}


def selection_corpora(per_corpus: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The corpora the summary averages over, and why each other corpus is reported apart."""
    chosen, apart = [], {}
    for c, res in sorted(per_corpus.items()):
        if c in APART:
            apart[c] = APART[c]
        elif res["plain"]["classes4"] < 3:
            apart[c] = f"{res['plain']['classes4']} of the 4 classes"
        else:
            chosen.append(c)
    return chosen, apart


def tried_entry(path: str) -> dict[str, Any]:
    """What ``loco.json`` records of another recipe tried: its name, config, steps, corpora and summary."""
    import json

    res = json.loads(Path(path).read_text())
    return {"recipe": res["recipe"], "config": res["config"], "steps": res["steps"],
            "summary_corpora": res["summary_corpora"], "summary": res["summary"], "file": str(path)}


def posthoc_entry(path: str) -> dict[str, Any]:
    """What ``loco.json`` records of a post-hoc results file: the variants it scored on the folds (each a
    recipe tried: a way of scoring that could have been chosen instead)."""
    import json

    res = json.loads(Path(path).read_text())
    runs = res.get("runs")
    variants = sorted({f"{run}: {v}" for run, r in runs.items() if isinstance(r, dict)
                       for v in r.get("summary", {})}) if isinstance(runs, dict) else list(res.get("variants", []))
    return {"file": str(path), "variants": variants or [Path(path).stem]}


def print_table(results: dict[str, Any]) -> None:
    print(f"{'corpus':13s} {'clips':>5s} {'model':>9s} " + " ".join(f"{m + ' 4/8':>13s}" for m in MODES))
    for c, r in results["per_corpus"].items():
        cells = [f"{r[m]['uar4'] or 0:6.3f}/{r[m]['uar8'] or 0:.3f}" for m in MODES]
        print(f"{c:13s} {r['clips']:5d} {r['model']:>9s} " + " ".join(f"{x:>13s}" for x in cells))
    for mode, s in results["summary"].items():
        rec = " ".join(f"{k} {v:.3f}" for k, v in s["recall"].items() if v is not None)
        cells = " ".join(f"{k} {'-' if s[k] is None else f'{s[k]:.3f}'}"
                         for k in ("uar4_mean", "uar4_min", "uar8_mean"))
        print(f"summary {mode:10s} {cells}  recall: {rec}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/train/lite.yaml")
    ap.add_argument("--recipe", default="v15", help="the recipe's name in the results (default v15)")
    ap.add_argument("--corpora", default=None, help="comma-separated (default: every corpus with >= --min-clips)")
    ap.add_argument("--min-clips", type=int, default=100)
    ap.add_argument("--max-steps", type=int, default=1000, help="steps of every LOCO run (same for every recipe)")
    ap.add_argument("--runs", default="runs/loco", help="where the per-corpus models go")
    ap.add_argument("--full-model", default=None,
                    help="the recipe trained on everything, for corpora it never reads (default: the embedded model)")
    ap.add_argument("--baseline", default=None,
                    help="the previous version's loco.json (its summary -> baseline, its recipe -> baseline_recipe)")
    ap.add_argument("--tried", nargs="*", default=[], metavar="JSON",
                    help="loco results of the other recipes tried (summaries recorded under recipes_tried)")
    ap.add_argument("--posthoc", nargs="*", default=[], metavar="JSON",
                    help="results of post-hoc variants scored on the same folds (centre_points.py, centred_head.py, "
                         "loco_posthoc.py...): counted in recipes_tried_count, listed under posthoc_tried")
    ap.add_argument("--centred-head", action="store_true",
                    help="fit each fold model's centred head as 'paraspeechclap fit-centred-head' fits the shipped "
                         "one (train split of the corpora it trained on), so speaker centring scores through it")
    ap.add_argument("--speaker-prior", type=float, default=None, metavar="K",
                    help="speaker centring of every fold shrinks speaker means by K clips (default: the full "
                         "model's speaker_prior, as the shipped model centres)")
    ap.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16", "int8"])
    add_json_arg(ap, "loco.json")
    args = ap.parse_args()
    return run(args)


def run(args: argparse.Namespace) -> int:
    import json

    from paraspeechclap import load_model

    t0 = time.perf_counter()
    names = args.corpora.split(",") if args.corpora else corpora(args.min_clips)
    trained_on = recipe_corpora(args.config)
    full = load_model(args.full_model, precision=args.precision)
    table = pooled_table(model=full)  # every fold with the full model's frozen backbone pools a clip alike
    prior = full.config.speaker_prior if args.speaker_prior is None else args.speaker_prior
    results: dict[str, Any] = {"recipe": args.recipe, "config": args.config, "steps": args.max_steps,
                               "precision": full.precision, "full_model": full.model_id,
                               "full_model_checksum": full.checksum,
                               "full_model_centred_head_checksum": full.centred_head_checksum or None,
                               "corpora": names, "per_corpus": {},
                               "centred_head": args.centred_head, "speaker_prior": prior}
    results["folds_reused"] = []  # trained by an earlier invocation: wall_s does not include their training
    for corpus in names:
        fold = Path(args.runs) / corpus
        if corpus in trained_on:
            if fold_finished(fold):
                results["folds_reused"].append(corpus)
            model = load_model(str(train_without(corpus, args.config, fold, args.max_steps)), precision=args.precision)
        else:
            model = full
        model.set_speaker_prior(prior)
        head = None
        if args.centred_head:
            head = "the model's own" if model.has_centred_head else fit_fold_head(model, table, corpus, trained_on)
        idx = [i for i, r in enumerate(table["rows"]) if r["source"] == corpus]
        res = score_corpus(model, [table["rows"][i] for i in idx], pooled_rows(model, table, idx))
        res["model"] = "left out" if corpus in trained_on else "full"
        if head is not None:
            res["centred_head"] = head
        if corpus in trained_on:
            res["dev"] = fold_dev(fold)
        results["per_corpus"][corpus] = res
        print(f"{corpus}: plain {res['plain']['uar4']}, speaker {res['speaker']['uar4']}", flush=True)
    chosen, apart = selection_corpora(results["per_corpus"])
    results["summary_corpora"], results["apart"] = chosen, apart
    results["summary"] = summarize(results["per_corpus"], chosen)
    results["apart_summary"] = {c: {m: results["per_corpus"][c][m] for m in MODES} for c in apart}
    devs = [results["per_corpus"][c]["dev"] for c in chosen if "dev" in results["per_corpus"][c]]
    results["dev_summary"] = {k: mean_present([d.get(k) for d in devs]) for k in sorted({k for d in devs for k in d})}
    base = json.loads(Path(args.baseline).read_text()) if args.baseline else None
    results["baseline"] = base["summary"] if base else None
    results["baseline_recipe"] = base["recipe"] if base else None
    results["recipes_tried"] = [tried_entry(p) for p in args.tried]
    results["posthoc_tried"] = [posthoc_entry(p) for p in args.posthoc]
    # this recipe, the other recipes compared with it, and every post-hoc variant scored on the same folds
    results["recipes_tried_count"] = 1 + len(args.tried) + sum(len(e["variants"]) for e in results["posthoc_tried"])
    results["wall_s"] = round(time.perf_counter() - t0, 1)
    write_results(json_path(args), results)
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
