#!/usr/bin/env bash
# Regenerate every results file that README.md and MODEL_CARD.md are made from, then the documents.
# Run from a clean checkout (each file records the commit; uncommitted changes are marked "-dirty") on
# an otherwise idle machine (the speed rows are timings). About 1.5 hours on 2 cores, plus about half
# an hour for the rebuild (skip it with SKIP_REBUILD=1; the card then shows the historical rebuild).
#   benchmarks/regenerate.sh            # everything
#   ONLY="quality examples" benchmarks/regenerate.sh   # some steps (names below)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
step() { [[ -z "${ONLY:-}" || " $ONLY " == *" $1 "* ]]; }
run() { echo "+ $*" >&2; "$py" "$@"; }
if step quality; then
    run benchmarks/quality.py --split dev
    run benchmarks/quality.py --split test
    run benchmarks/quality.py --split test --precision bf16
fi
step examples && run benchmarks/examples.py
step vocabulary && run benchmarks/vocabulary.py --split dev && run benchmarks/vocabulary.py --split test && run benchmarks/vocabulary_probe.py
step regression && run benchmarks/regression.py
step robustness && run benchmarks/robustness.py --split dev
step rerank && run benchmarks/rerank.py
# LOCO_RUNS: the shipped recipe's leave-one-corpus-out folds (the --runs of loco.json's command; v18's by default)
step calibration && run benchmarks/calibrate_shipped.py --write --loco-runs "${LOCO_RUNS:-runs/loco-lite-speaker-centred-w01}" --loco-corpora ased,emodb,emovo,savee,urdu
step annotate && run benchmarks/annotate.py
step serve && run benchmarks/serve.py
step reward && run benchmarks/reward_robustness.py && run benchmarks/reward_robustness.py --split dev --json benchmarks/results/reward_robustness_dev_fp32.json
step probe && run benchmarks/backbone_probe.py --variants tiny.en,base --split dev
step search && run benchmarks/search.py
step synth && run benchmarks/synth.py --mix-clips 200 --jobs 2
if step speed; then
    run benchmarks/inference.py --models offline --threads 2
    run benchmarks/packed_linear.py
    run benchmarks/block_cost.py
    run benchmarks/inference.py --models wavlm-large --threads 2 --json benchmarks/results/inference_wavlm.json
fi
if step rebuild && [[ -z "${SKIP_REBUILD:-}" ]]; then
    run benchmarks/rebuild.py
fi
run benchmarks/report.py
