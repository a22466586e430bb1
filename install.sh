#!/usr/bin/env bash
# Create .venv (if missing) and install paraspeechclap into it, offline-capable, CPU torch.
#   ./install.sh          the package and its runtime dependencies
#   ./install.sh --dev    plus everything the test suite and the synthetic corpus need (and, as root
#                         with apt-get, the flite program and the chromium browser)
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
# The Flite synthesis engine (one of the engines that rebuild the default model) is a system program,
# not a wheel. With --dev, install it when this user may (root with apt-get); otherwise say so.
if [[ -n "$extras" ]] && ! command -v flite >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        { apt-get install -y -qq flite || { apt-get update -qq && apt-get install -y -qq flite; }; } >/dev/null 2>&1 \
            || echo "note: could not install flite; the flite synthesis engine and its tests are skipped" >&2
    else
        echo "note: flite is not installed (apt-get install flite); the flite synthesis engine and its tests are skipped" >&2
    fi
fi
# The web page's browser tests (tests/test_serve_page.py) drive a real Chromium, also a system program:
# the same rule as flite. noninteractive: a dependency's configuration question must not wait on stdin.
if [[ -n "$extras" ]] && ! command -v chromium >/dev/null; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        { apt-get install -y -qq chromium || { apt-get update -qq && apt-get install -y -qq chromium; }; } >/dev/null 2>&1 \
            || echo "note: could not install chromium; the web page's browser tests are skipped" >&2
    else
        echo "note: chromium is not installed (apt-get install chromium); the web page's browser tests are skipped" >&2
    fi
fi
