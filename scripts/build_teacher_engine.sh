#!/usr/bin/env bash
# Build llama.cpp's own `llama-server` (parallel slots, continuous batching, prompt cache) from the
# llama.cpp sources vendored in the llama-cpp-python source distribution, once per machine.
#
#   bash scripts/build_teacher_engine.sh        # setup.sh calls this; a re-run is a no-op
#   PHI_SKIP_ENGINE_BUILD=1   do not build (the teacher then uses llama-cpp-python's server)
#   PHI_ENGINE_NATIVE=0       the portable build even where this CPU has AVX-512 or AVX-VNNI kernels
#
# Result: $PHI_ENGINE_DIR (default ~/.cache/phi_utils/engine)/llama-server-<version>/llama-server,
# plus BUILD_INFO.json beside it. phi_utils.teacher.engine finds it there.
# Built for this CPU by default: the AVX-512 kernels it advertises (AVX512F/BW/DQ/VL, VNNI, BF16, VBMI,
# AVX-VNNI; never AMX) on top of the portable AVX2/FMA/F16C set, with the CPU's flags recorded in
# BUILD_INFO.json: on another CPU such a build is redone here and refused at run time. A CPU with none of
# those (or PHI_ENGINE_NATIVE=0) gets the portable build (GGML_NATIVE=OFF). The AVX-512 build served
# 1.27x the portable build's ratings per minute on an AMD EPYC host (2026-12-04, README benchmarks). AMX is
# left out because a -march=native build (AMX advertised) died at start with SIGSEGV on this project's
# VM; the same sources with the explicit AVX-512 flags and no AMX start and prefill 1.4x faster there
# (2026-12-03, README benchmarks). If the build for this CPU fails, a portable one is made. Only the
# server target is built.
# A failed build prints one warning and exits 0: the pipeline then keeps llama-cpp-python's server.
set -uo pipefail
cd "$(dirname "$0")/.."
VERSION=0.3.36
ROOT=${PHI_ENGINE_DIR:-$HOME/.cache/phi_utils/engine}
DEST="$ROOT/llama-server-$VERSION"
PY=${VENV:-.venv}/bin/python
[ -x "$PY" ] || PY=python3

# The CPU a native build is for: a hash of its feature flags (what -march=native reads).
CPU=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | tr ' ' '\n' | sed '/^$/d' | LC_ALL=C sort | sha256sum | cut -c1-16)
# This CPU's AVX-512 family as ggml's cmake options (AMX never; see above).
has() { grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | tr ' ' '\n' | grep -qx "$1"; }
isa_flags() {
  local f=""
  if has avx512f && has avx512bw && has avx512dq && has avx512vl; then
    f="-DGGML_AVX512=ON"
    has avx512_vnni && f="$f -DGGML_AVX512_VNNI=ON"
    has avx512_bf16 && f="$f -DGGML_AVX512_BF16=ON"
    has avx512vbmi && f="$f -DGGML_AVX512_VBMI=ON"
  fi
  has avx_vnni && f="$f -DGGML_AVX_VNNI=ON"
  echo "$f"
}
WANT=portable
[ "${PHI_ENGINE_NATIVE:-1}" = 1 ] && [ -n "$(isa_flags)" ] && WANT=${CPU:-portable}
built() {  # a build without a "cpu" entry is a portable one
  [ -x "$DEST/llama-server" ] && [ -f "$DEST/BUILD_INFO.json" ] && "$DEST/llama-server" --version >/dev/null 2>&1 || return 1
  local built_for failed
  built_for=$(grep -o '"cpu": "[^"]*"' "$DEST/BUILD_INFO.json" | cut -d'"' -f4)
  failed=$(grep -o '"native_failed_for": "[^"]*"' "$DEST/BUILD_INFO.json" | cut -d'"' -f4)
  # a portable build made because the build for this CPU failed stands (set-up does not retry it every time)
  [ "${built_for:-portable}" = "$WANT" ] || { [ "${built_for:-portable}" = portable ] && [ "$failed" = "$CPU" ]; }
}
if built; then
  echo "teacher engine: $DEST/llama-server (cached)"
  exit 0
fi
if [ "${PHI_SKIP_ENGINE_BUILD:-0}" = 1 ]; then
  echo "teacher engine: not built (PHI_SKIP_ENGINE_BUILD=1); the teacher uses llama-cpp-python's server"
  exit 0
fi

fail() {
  echo "WARNING: could not build llama.cpp's llama-server ($1); the teacher stays on llama-cpp-python's" \
       "server (one request at a time). Log: $LOG" >&2
  exit 0
}

mkdir -p "$ROOT" || { echo "WARNING: cannot create $ROOT; teacher engine not built" >&2; exit 0; }
# Several checkouts may run set-up at once: one builds, the others wait for it and reuse the result.
exec 9>"$ROOT/.build.lock"
command -v flock >/dev/null 2>&1 && flock 9
if built; then
  echo "teacher engine: $DEST/llama-server (cached)"
  exit 0
fi
WORK=$(mktemp -d "$ROOT/.build-XXXXXX")
LOG="$ROOT/build-$VERSION.log"
trap 'rm -rf "$WORK"' EXIT
: > "$LOG"

# The source distribution: a local copy first (PHI_LLAMA_SDIST), else pip download (PyPI only has it as an sdist).
SDIST=${PHI_LLAMA_SDIST:-}
if [ -z "$SDIST" ] || [ ! -f "$SDIST" ]; then
  echo "teacher engine: fetching the llama-cpp-python==$VERSION source distribution"
  "$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation "llama-cpp-python==$VERSION" \
    -d "$WORK/sdist" >>"$LOG" 2>&1 \
    || "$PY" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$WORK/sdist" >>"$LOG" 2>&1 \
    || fail "pip download of the llama-cpp-python==$VERSION sdist failed"
  SDIST=$(ls "$WORK"/sdist/llama_cpp_python-$VERSION.tar.gz 2>/dev/null) || fail "sdist not found after download"
fi
tar -xzf "$SDIST" -C "$WORK" >>"$LOG" 2>&1 || fail "cannot unpack $SDIST"
SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
[ -f "$SRC/tools/server/CMakeLists.txt" ] || fail "no tools/server in the vendored llama.cpp"
command -v cmake >/dev/null 2>&1 || fail "cmake not found"

build() {  # $1: ON (this CPU's ISA flags) or OFF (portable)
  rm -rf "$WORK/build"
  local isa=""
  [ "$1" = ON ] && isa=$(isa_flags)
  echo "teacher engine: building llama-server, ${isa:-portable AVX2} (a few minutes on 2 cores; log $LOG)"
  # shellcheck disable=SC2086
  cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF $isa -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >>"$LOG" 2>&1 \
    && cmake --build "$WORK/build" --target llama-server -j "${PHI_BUILD_JOBS:-$(nproc)}" >>"$LOG" 2>&1 \
    && [ -x "$WORK/build/bin/llama-server" ] && "$WORK/build/bin/llama-server" --version >>"$LOG" 2>&1
}
NATIVE=OFF
ISA_USED=""
FAILED_FOR=""
if [ "$WANT" != portable ]; then
  if build ON; then NATIVE=ON; ISA_USED=$(isa_flags)
  else echo "teacher engine: the build for this CPU failed; trying a portable one" >&2; WANT=portable; FAILED_FOR=$CPU; fi
fi
if [ "$NATIVE" = OFF ]; then
  build OFF || fail "cmake configure or build failed"
fi
BIN="$WORK/build/bin/llama-server"

mkdir -p "$DEST.tmp" && cp "$BIN" "$DEST.tmp/llama-server" || fail "cannot copy the binary to $DEST"
"$BIN" --version 2>&1 | "$PY" -c "import json,sys,time; print(json.dumps({'llama_cpp_python_sdist': '$VERSION', \
'flags': 'GGML_NATIVE=OFF $ISA_USED BUILD_SHARED_LIBS=OFF', 'cpu': '$WANT', 'native_failed_for': '$FAILED_FOR', \
'version': sys.stdin.read().strip(), 'built': time.strftime('%Y-%m-%dT%H:%M:%S')}, indent=1))" > "$DEST.tmp/BUILD_INFO.json"
rm -rf "$DEST" && mv "$DEST.tmp" "$DEST" || fail "cannot move the build into $DEST"
echo "teacher engine: $DEST/llama-server"
