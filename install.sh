#!/usr/bin/env bash
# Create .venv (if missing) and install paraspeechclap into it, offline-capable, CPU torch.
#   ./install.sh          the package and its runtime dependencies
#   ./install.sh --dev    plus everything the test suite and the synthetic corpus need
set -euo pipefail
cd "$(dirname "$0")"
extras=""
[[ "${1:-}" == "--dev" ]] && extras="[dev,synth,data]"
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
. .venv/bin/activate
quiet="-q"
# torch first, from the pinned CPU wheel: anything that depends on torch would otherwise pull CUDA.
python -m pip install $quiet --disable-pip-version-check torch==2.13.0
python -m pip install $quiet --disable-pip-version-check -c constraints.txt -e ".${extras}"
