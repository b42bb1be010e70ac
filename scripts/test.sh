#!/usr/bin/env bash
# Builds and runs every test: the CPU suite (unit, differential harness, diffusers parity),
# the same suite under ASan + UBSan, a compile-and-link of the CUDA backend (sm_80, sm_89,
# sm_90a; its tests run too when a GPU is visible), the same with the CUDA toolkit alone
# (cuda-bare: no oneDNN, libpng, FFmpeg, ICU or sentencepiece; the suite on mindiesd's own CPU
# GEMM and convolution), and the bounded libFuzzer runs. After the builds, scripts/check-deps.py
# checks that every file they used from outside the repository comes with install-deps.sh on a
# fresh Debian machine (and, as its own test, that it notices a package missing from that list).
#   scripts/test.sh            everything (what CI runs)
#   FAST=1 scripts/test.sh     CPU suite only
#   FUZZ_SECONDS=N             seconds per fuzz target (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-2}

bash scripts/install-deps.sh

step() { printf '\n==== %s ====\n' "$*"; }

step "cpu build"
cmake --preset cpu >/dev/null
cmake --build --preset cpu -j "$JOBS"
step "dependencies of the cpu build"
python3 scripts/check-deps.py build/cpu
# The check must catch the package whose absence once broke a fresh machine's configure.
dropped=$(python3 scripts/check-deps.py --drop ocl-icd-opencl-dev build/cpu 2>&1 || true)
if grep -q 'MISSING ocl-icd-opencl-dev' <<<"$dropped"; then
  echo "check-deps: self-test passed (a package left off install-deps.sh is named)"
else
  echo "check-deps: self-test FAILED: dropping ocl-icd-opencl-dev went unnoticed" >&2
  exit 1
fi
step "cpu tests"
ctest --preset cpu -j "$JOBS"

if [ "${FAST:-0}" = 1 ]; then exit 0; fi

if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  step "cuda build (compile + link)"
  bash scripts/fetch-cudnn-frontend.sh ||
    echo "cudnn-frontend not fetched: the cuda build goes on without cuDNN's fused attention"
  cmake --preset cuda >/dev/null
  cmake --build --preset cuda -j "$JOBS"
  step "cuda tests (CPU results where no GPU is visible)"
  ctest --preset cuda -j "$JOBS"
  step "cuda-bare build (the CUDA toolkit alone: MINDIESD_CPU_DEPS=OFF)"
  cmake --preset cuda-bare >/dev/null
  cmake --build --preset cuda-bare -j "$JOBS"
  step "cuda-bare tests"
  ctest --preset cuda-bare -j "$JOBS"
else
  echo "nvcc not found: skipping the cuda preset"
fi

step "asan + ubsan build and tests"
cmake --preset asan >/dev/null
cmake --build --preset asan -j "$JOBS"
ctest --preset asan -j "$JOBS"

if [ -x scripts/fuzz.sh ]; then
  step "fuzzing"
  bash scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
fi

step "dependencies of every build"
built=()
for d in build/cpu build/cuda build/cuda-bare build/asan build/fuzz; do
  [ -f "$d/build.ninja" ] && built+=("$d")
done
python3 scripts/check-deps.py "${built[@]}"
