"""How long to fit the centred head, chosen on the leave-one-corpus-out folds' own dev speakers.

The shipped centred head (:mod:`paraspeechclap.centred_head`) is fitted 300 full-batch steps and ends with a
training loss near 0.001: it fits its training clips almost exactly. Fewer steps may carry better to speakers
and corpora it never heard. This fits each LOCO fold model's head as ``loco.py --centred-head`` fits it (the
library's :func:`~paraspeechclap.centred_head.fit_path`, the settings of ``fit-centred-head`` but ``steps``)
and keeps the head after each step count of ``--at`` (one fit gives every shorter fit exactly). Each head is
scored speaker-centred:

- on the fold's **dev** speakers: the shared split's ``dev`` clips of the corpora the fold trained on, each
  centred on its speaker's dev clips; 4- and 8-class emotion UAR per corpus, then the mean over those corpora.
  This is the selection signal: the step count with the best mean over the folds of the dev 4-class UAR
  (ties: 8-class) is the choice, made before the left-out corpora are looked at;
- on the **left-out** corpus, as ``loco.py`` scores its ``speaker`` row: the number the choice is reported on.

Step 0 is the fold's main head (no centred head: what ``--no-centred-head`` gives)::

    python benchmarks/centred_head_steps.py --runs runs/loco-lite-speaker-centred-w01
                                        # -> benchmarks/results/centred_head_steps.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    POOLED_CACHE,
    add_json_arg,
    json_path,
    mean_present,
    pooled_rows,
    pooled_table,
    row_speakers,
    write_results,
)
from loco import _scores, centred, fold_fit_data, recipe_corpora, summary_of  # noqa: E402
from loco_posthoc import SUMMARY_CORPORA  # noqa: E402

from paraspeechclap.centred_head import CentredHeadFit  # noqa: E402

DEFAULT_AT = (0, 10, 25, 50, 100, 150, 200, 300, 450, 600)
#: what the shipped head was fitted with: it and step 0 (the main head, v18's speaker centring) are already among
#: the recipes ``loco.json`` counts, so the other step counts are the new variants
SHIPPED_STEPS = CentredHeadFit().steps


# -- pure pieces ----------------------------------------------------------------------------------------------
def dev_rows(rows: list[dict[str, Any]], corpus: str, trained_on: set[str]) -> dict[str, list[int]]:
    """``{source: indices}`` of the ``dev``-split rows with a speaker id of each corpus a fold trained on
    (``corpus`` left out)."""
    from paraspeechclap.centering import has_speaker_id
    from paraspeechclap.data.splits import split_of

    out: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        if r["source"] != corpus and r["source"] in trained_on and split_of(r) == "dev" \
                and has_speaker_id(r.get("speaker")):
            out.setdefault(r["source"], []).append(i)
    return out


def choose(per_step: dict[int, dict[str, float | None]]) -> int:
    """The step count with the highest ``dev4`` (ties: ``dev8``, then fewer steps)."""
    return max(per_step, key=lambda s: (per_step[s]["dev4"] or 0.0, per_step[s]["dev8"] or 0.0, -s))


# -- one fold -------------------------------------------------------------------------------------------------
def speaker_scores(model: Any, table: dict[str, Any], idx: list[int]) -> dict[str, Any]:
    """:func:`loco._scores` of rows ``idx`` centred on their speakers (through the model's centred head if any)."""
    rows = [table["rows"][i] for i in idx]
    pooled = pooled_rows(model, table, idx)
    return _scores(model, centred(model, pooled, model.embed_pooled(pooled), "speaker", row_speakers(rows)), rows)


def fit_fold_heads(run: Path, corpus: str, table: dict[str, Any], trained_on: set[str],
                   at: list[int]) -> tuple[Any, dict[int, Any], list[float], dict[str, Any]]:
    """Fold ``corpus``'s model (no centred head set), its centred head after each step count of ``at`` (> 0),
    the fit's losses and what it used (``fit_s`` included), fitted as ``loco.py --centred-head`` fits it."""
    from paraspeechclap import load_model
    from paraspeechclap.centred_head import fit_inputs, fit_path

    model = load_model(str(run / corpus / "final"), precision="fp32")
    model.set_centred_head(None)
    fit = CentredHeadFit(steps=max(at))
    inputs = fit_inputs(model, *fold_fit_data(model, table, corpus, trained_on), fit)
    t0 = time.perf_counter()
    heads, losses = fit_path(model.audio_projection, *inputs.arrays, float(model.logit_scale.detach()),
                             model.audio_branch.state_width, fit, [s for s in at if s > 0])
    return model, heads, losses, {**inputs.info, "fit_s": round(time.perf_counter() - t0, 1)}


def fold_groups(rows: list[dict[str, Any]], corpus: str, trained_on: set[str]) -> dict[str, Any]:
    """A fold's scored rows: ``{"dev": {source: indices}, "loco": indices}`` (:func:`dev_rows`; every row of the
    left-out ``corpus``)."""
    return {"dev": dev_rows(rows, corpus, trained_on), "loco": [i for i, r in enumerate(rows) if r["source"] == corpus]}


def shipped_fold_model(run: Path, corpus: str, table: dict[str, Any], trained_on: set[str]) -> tuple[Any, dict]:
    """Fold ``corpus``'s model with its centred head fitted as shipped (:data:`SHIPPED_STEPS`) and set, and what the
    fit used."""
    model, heads, _, info = fit_fold_heads(run, corpus, table, trained_on, [SHIPPED_STEPS])
    model.set_centred_head(heads[SHIPPED_STEPS])
    return model, info


def settings_scores(model: Any, table: dict[str, Any], corpus: str, trained_on: set[str],
                    score: Any) -> dict[Any, dict[str, Any]]:
    """``{setting: dev_and_left_out entry}`` of one fold: ``score(model, table, indices)`` gives ``{setting:
    loco._scores}`` of those rows, called on each dev corpus (:func:`fold_groups`) and on the left-out one."""
    groups = fold_groups(table["rows"], corpus, trained_on)
    dev = {src: score(model, table, ix) for src, ix in groups["dev"].items()}
    left = score(model, table, groups["loco"])
    return {s: dev_and_left_out({src: d[s] for src, d in dev.items()}, left[s]) for s in left}


def dev_and_left_out(per: dict[str, dict[str, Any]], left_out: dict[str, Any]) -> dict[str, Any]:
    """One scoring's entry: the mean over the dev corpora of 4- and 8-class UAR, each corpus's, and the left-out
    corpus's scores (``per``: :func:`loco._scores` per dev corpus)."""
    return {"dev4": mean_present([p["uar4"] for p in per.values()]),
            "dev8": mean_present([p["uar8"] for p in per.values()]),
            "dev_per_corpus": {src: {"uar4": p["uar4"], "uar8": p["uar8"]} for src, p in per.items()},
            "loco": left_out}


def fold_steps(run: Path, corpus: str, table: dict[str, Any], trained_on: set[str],
               at: list[int]) -> dict[str, Any]:
    """``{step: {"dev4", "dev8", "dev_per_corpus", "loss", "loco"}}`` for one fold and what its fit used."""
    model, heads, losses, info = fit_fold_heads(run, corpus, table, trained_on, at)
    groups = fold_groups(table["rows"], corpus, trained_on)
    out: dict[int, Any] = {}
    for step in at:
        model.set_centred_head(heads.get(step))
        per = {src: speaker_scores(model, table, ix) for src, ix in groups["dev"].items()}
        out[step] = {**dev_and_left_out(per, speaker_scores(model, table, groups["loco"])),
                     "loss": None if step == 0 else round(losses[step - 1], 6)}
    return {"steps": out, "fit": info}


# -- summary --------------------------------------------------------------------------------------------------
def summarize(folds: dict[str, Any], at: list[Any], key: str = "steps") -> dict[Any, dict[str, Any]]:
    """Per step count (or other setting under ``key``): means over the folds of dev 4/8-class and of the left-out
    corpus's 4/8-class UAR, its minimum and each class's recall (``loco.py``'s summary keys)."""
    out: dict[Any, dict[str, Any]] = {}
    for step in at:
        got = [f[key][step] for f in folds.values()]
        out[step] = {"dev4": mean_present([g["dev4"] for g in got]), "dev8": mean_present([g["dev8"] for g in got]),
                     **summary_of([g["loco"] for g in got])}
    return out


def nested_choice(left_out: dict[str, dict[float, float]]) -> dict[str, float]:
    """``{corpus: setting}``: for each corpus, the setting with the best mean 4-class UAR over the *other* corpora
    (``left_out[corpus][setting]``; ties: the smaller setting)."""
    out = {}
    for corpus in left_out:
        others = [c for c in left_out if c != corpus]
        settings = left_out[corpus].keys()
        out[corpus] = max(settings, key=lambda w: (float(np.mean([left_out[c][w] for c in others])), -w))
    return out


def nested_summary(folds: dict[str, Any], settings: list[float], key: str) -> dict[str, Any]:
    """The left-out summary with each corpus scored at its :func:`nested_choice` setting (``folds[c][key]``: the
    fold's entries per setting), and those settings under ``key``."""
    picks = nested_choice({c: {w: f[key][w]["loco"]["uar4"] for w in settings} for c, f in folds.items()})
    return {key: picks, **summary_of([folds[c][key][w]["loco"] for c, w in picks.items()])}


def finish_settings(args: argparse.Namespace, folds: dict[str, Any], settings: list[float], key: str, t0: float,
                    selection: str, variants: list[str], label: str, **fields: Any) -> None:
    """Summarise a settings benchmark's folds (``folds[c][key][setting]``), choose on dev, score the nested choice,
    write the results (``fields`` among them, before the settings) and print them, the column named ``label``."""
    summary = summarize(folds, settings, key=key)
    results = {"runs": str(args.runs), "config": args.config, "corpora": list(folds), "precision": "fp32", **fields,
               key: settings, "selection": selection, "chosen_on_dev": choose(summary), "summary": summary,
               "nested": nested_summary(folds, settings, key), "variants": variants, "per_corpus": folds,
               "wall_s": round(time.time() - t0, 1)}
    write_results(json_path(args), results)
    print_table(summary, results["chosen_on_dev"], label)
    n = results["nested"]
    print(f"nested ({key} {n[key]}): {n['uar4_mean']:.3f} / {n['uar4_min']:.3f}, sad {n['recall']['sad']:.3f}")


def print_table(summary: dict[Any, dict[str, Any]], chosen: Any, setting: str = "steps") -> None:
    """Markdown table of a :func:`summarize` result, ``chosen`` marked."""
    print(f"| {setting} | dev 4 / 8-class | left-out 4-class mean / min | 8-class | recall sad |")
    print("|---|---|---|---|---|")
    for key, s in summary.items():
        mark = " (chosen on dev)" if key == chosen else ""
        print(f"| {key}{mark} | {s['dev4']:.3f} / {s['dev8']:.3f} | {s['uar4_mean']:.3f} / {s['uar4_min']:.3f} "
              f"| {s['uar8_mean']:.3f} | {s['recall']['sad']:.3f} |")


def add_fold_args(ap: argparse.ArgumentParser) -> None:
    """``--runs``, ``--config``, ``--corpora`` and ``--cache``: the fold models a fold-head benchmark scores."""
    ap.add_argument("--runs", type=Path, required=True, help="a loco.py --runs folder (one fold model per corpus)")
    ap.add_argument("--config", default="configs/train/lite.yaml", help="the recipe the folds trained")
    ap.add_argument("--corpora", default=",".join(SUMMARY_CORPORA))
    ap.add_argument("--cache", type=Path, default=POOLED_CACHE)


def run_folds(args: argparse.Namespace, score_fold: Any) -> dict[str, Any]:
    """``{corpus: score_fold(run, corpus, table, trained_on)}`` over ``args.corpora`` (:func:`add_fold_args`)."""
    table, trained_on = pooled_table(args.cache), recipe_corpora(args.config)
    folds = {}
    for c in args.corpora.split(","):
        folds[c] = score_fold(args.runs, c, table, trained_on)
        print(f"{c}: head fitted in {folds[c]['fit']['fit_s']} s", flush=True)
    return folds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_fold_args(ap)
    ap.add_argument("--at", default=",".join(map(str, DEFAULT_AT)),
                    help="step counts to score (0: the main head, no centred head)")
    add_json_arg(ap, "centred_head_steps.json")
    args = ap.parse_args()
    at = sorted({int(s) for s in args.at.split(",")})
    t0 = time.time()
    folds = run_folds(args, lambda run, c, table, trained_on: fold_steps(run, c, table, trained_on, at))
    summary = summarize(folds, at)
    results = {"runs": str(args.runs), "config": args.config, "corpora": list(folds), "precision": "fp32", "at": at,
               "selection": "max over steps of the folds' mean dev speaker-centred 4-class UAR (ties: 8-class)",
               "chosen_steps": choose(summary), "shipped_steps": SHIPPED_STEPS, "summary": summary,
               "variants": [f"centred head fitted {s} steps" for s in at if s not in (0, SHIPPED_STEPS)],
               "per_corpus": folds,
               "wall_s": round(time.time() - t0, 1)}
    write_results(json_path(args), results)
    print_table(summary, results["chosen_steps"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
