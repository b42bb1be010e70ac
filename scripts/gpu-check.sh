#!/usr/bin/env bash
# Builds the `cuda` preset on a machine with an NVIDIA GPU, runs the test suite there, and
# writes what happened to benchmark/results/<date>-<gpu>.md.
#
#   scripts/gpu-check.sh            configure + build + ctest, then the report
#   scripts/gpu-check.sh --bench    also run the GPU benchmark (bench_cuda, beside PyTorch)
#   scripts/gpu-check.sh --bare     build the cuda-bare preset instead (MINDIESD_CPU_DEPS=OFF: the
#                                   CUDA toolkit alone, plus nlohmann-json and GoogleTest sources
#                                   from build/deps, made by scripts/vendor-build-deps.sh and
#                                   carried along); tests needing tokenizers / FFmpeg skip
#   CUDA_ARCHS=LIST                 CMAKE_CUDA_ARCHITECTURES for the build (default: the preset's)
#   scripts/gpu-check.sh --prebuilt no build: unpack .gpu/bin.tar.xz (and .gpu/libs.tar.xz into
#                                   .gpu/lib unless an earlier call did), made on a build machine
#                                   by scripts/gpu-bundle.sh (see there for the two-call recipe),
#                                   and test with them
#   JOBS=N                          build parallelism (default: all cores)
#   TEST_FILTER=REGEX               only the ctest tests matching it (e.g. 'Cuda|Harness')
#
# Meant for a bare GPU machine: nvcc, CMake, Ninja and PyTorch (with cuDNN and NCCL as pip
# wheels), but none of the Debian -dev packages that scripts/install-deps.sh installs. It
# installs nothing and downloads nothing. It tries the normal preset first; when the
# configure step fails it lists which of the build's dependencies are absent (oneDNN,
# nlohmann-json, libpng, GoogleTest are the usual ones on such a machine) and still writes
# the report, so a failed run is recorded as honestly as a passing one.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
JOBS=${JOBS:-$(nproc)}
RUN_BENCH=0
PREBUILT=0
PRESET=cuda
for arg in "$@"; do
  case "$arg" in
    --bench) RUN_BENCH=1 ;;
    --prebuilt) PREBUILT=1 ;;
    --bare) PRESET=cuda-bare ;;
    -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

BUILD=build/$PRESET  # the preset's binaryDir
LOGS=$BUILD/gpu-check-logs
mkdir -p "$LOGS" benchmark/results
export PATH="$PATH:/usr/local/cuda/bin"

# ---- the machine ------------------------------------------------------------------------------
GPU="none"
GPU_DETAILS="nvidia-smi not found or no GPU visible"
if command -v nvidia-smi >/dev/null 2>&1 &&
  GPU_LINE=$(nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap \
    --format=csv,noheader 2>/dev/null | head -1) && [ -n "$GPU_LINE" ]; then
  GPU=$(echo "$GPU_LINE" | cut -d, -f1 | sed 's/^ *//;s/ *$//')
  GPU_DETAILS="$GPU_LINE (name, driver, memory, compute capability)"
  GPU_COUNT=$(nvidia-smi -L 2>/dev/null | wc -l)
  GPU_DETAILS="$GPU_DETAILS; $GPU_COUNT GPU(s) visible"
fi
GPU_SLUG=$(echo "$GPU" | tr '[:upper:]' '[:lower:]' | sed 's/[^a-z0-9]\+/-/g;s/^-//;s/-$//')
DATE=$(date -u +%Y-%m-%d)
REPORT=benchmark/results/$DATE-$GPU_SLUG.md

COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo "no commit")
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then COMMIT="$COMMIT (with uncommitted changes)"; fi

version_of() {
  local v
  v=$("$@" 2>/dev/null | grep -m1 -Eo '[0-9]+\.[0-9]+(\.[0-9]+)?' | head -1)
  echo "${v:-missing}"
}
NVCC_V=$(nvcc --version 2>/dev/null | grep -Eo 'release [0-9.]+' | cut -d' ' -f2 || true)
CMAKE_V=$(version_of cmake --version)
NINJA_V=$(version_of ninja --version)
CXX_V=$(version_of c++ --version)

# cuDNN and NCCL from PyTorch's pip wheels, exported as <Pkg>_ROOT so that a find_package()
# for them finds the wheel's headers and libraries. Nothing uses them yet; reported anyway.
wheel_dir() {
  python3 - "$1" 2>/dev/null <<'EOF'
import importlib, os, sys
try:
    m = importlib.import_module(sys.argv[1])
    print(list(m.__path__)[0])
except Exception:
    pass
EOF
}
CUDNN_DIR=$(wheel_dir nvidia.cudnn)
NCCL_DIR=$(wheel_dir nvidia.nccl)
[ -n "$CUDNN_DIR" ] && export CUDNN_ROOT="$CUDNN_DIR"
[ -n "$NCCL_DIR" ] && export NCCL_ROOT="$NCCL_DIR"
TORCH_V=$(python3 -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)' 2>/dev/null || echo "missing")

# What the CPU side of the build needs; absent on a bare GPU machine.
have_header() { echo "#include <$1>" | c++ -std=c++20 -E -x c++ - >/dev/null 2>&1; }
MISSING=()
if [ "$PRESET" = cuda ]; then
  have_header oneapi/dnnl/dnnl.hpp || MISSING+=("oneDNN (libdnnl-dev)")
  have_header png.h || MISSING+=("libpng (libpng-dev)")
fi
have_header nlohmann/json.hpp || [ -f build/deps/nlohmann_json/include/nlohmann/json.hpp ] ||
  MISSING+=("nlohmann-json (nlohmann-json3-dev or build/deps)")
have_header gtest/gtest.h || [ -f build/deps/googletest/CMakeLists.txt ] ||
  MISSING+=("GoogleTest (libgtest-dev or build/deps)")
command -v nvcc >/dev/null 2>&1 || MISSING+=("nvcc (CUDA toolkit)")
command -v ninja >/dev/null 2>&1 || MISSING+=("ninja")

# ---- configure, build, test -------------------------------------------------------------------
CONFIGURE_CMD="cmake --preset $PRESET${CUDA_ARCHS:+ -DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCHS}"
# CMake < 3.26 knows no C++20 flag for nvcc and refuses CMAKE_CUDA_STANDARD 20; tell it.
if [ "$(printf '%s\n3.26\n' "$CMAKE_V" | sort -V | head -1)" != 3.26 ]; then
  CONFIGURE_CMD="$CONFIGURE_CMD -DCMAKE_CUDA20_STANDARD_COMPILE_OPTION=-std=c++20"
  CONFIGURE_CMD="$CONFIGURE_CMD -DCMAKE_CUDA20_EXTENSION_COMPILE_OPTION=-std=c++20"
fi
BUILD_CMD="cmake --build --preset $PRESET -j $JOBS"
TEST_CMD="ctest --test-dir $BUILD -j $JOBS --output-on-failure --timeout 300${TEST_FILTER:+ -R $TEST_FILTER}"
CONFIGURE=skipped BUILD_STATUS=skipped TESTS=skipped TEST_SUMMARY="" FAILED_TESTS=""
SKIPPED_COUNT=""
GAPS=""

step() { printf '\n==== %s ====\n' "$*"; }
if [ "$GPU" = none ]; then
  echo "gpu-check: no GPU visible; building and testing anyway (the CUDA tests will skip)" >&2
fi
START=$SECONDS
# Where the executables look for the CUDA libraries and (prebuilt) the CPU side's: the toolkit,
# then every lib folder of PyTorch's nvidia wheels (cuDNN, NVRTC, ...).
NVIDIA_LIBS=$(python3 -c '
import os
try:
    import nvidia
    base = list(nvidia.__path__)[0]
    print(":".join(os.path.join(base, d, "lib") for d in sorted(os.listdir(base))
                   if os.path.isdir(os.path.join(base, d, "lib"))))
except Exception:
    pass
' 2>/dev/null)
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/usr/local/cuda/lib64${CUDNN_DIR:+:$CUDNN_DIR/lib}${NVIDIA_LIBS:+:$NVIDIA_LIBS}"
if [ -d .gpu/whl ] && ls .gpu/whl/*.whl >/dev/null 2>&1; then  # the PyTorch peer's diffusers
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site \
    .gpu/whl/*.whl 2>/dev/null && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ "$PREBUILT" = 1 ]; then
  step "prebuilt: unpacking .gpu/bin.tar.xz (and .gpu/libs.tar.xz into .gpu/lib unless there)"
  CONFIGURE_CMD="(prebuilt: scripts/gpu-bundle.sh on the build machine)"
  BUILD_CMD="tar xJf .gpu/bin.tar.xz"
  if [ ! -d .gpu/lib ] && [ -f .gpu/libs.tar.xz ]; then
    mkdir -p .gpu/lib && tar xJf .gpu/libs.tar.xz -C .gpu/lib
  fi
  if [ -d .gpu/lib ] && tar xJf .gpu/bin.tar.xz; then
    CONFIGURE=prebuilt BUILD_STATUS="ok (prebuilt)"
    [ -f "$BUILD/BUILD_INFO" ] && COMMIT="$(sed -n 's/^commit //p' "$BUILD/BUILD_INFO") (prebuilt: $(sed -n 's/^built //p' "$BUILD/BUILD_INFO"))"
    export LD_LIBRARY_PATH="$PWD/.gpu/lib:$LD_LIBRARY_PATH"
    MISSING=()
  else
    echo "gpu-check: --prebuilt needs .gpu/bin.tar.xz and .gpu/lib (or .gpu/libs.tar.xz)" >&2
    CONFIGURE=failed
  fi
else
  step "configure: $CONFIGURE_CMD"
  if $CONFIGURE_CMD >"$LOGS/configure.log" 2>&1; then
    CONFIGURE=ok
  else
    CONFIGURE=failed
    tail -30 "$LOGS/configure.log"
  fi
fi

if [ "$CONFIGURE" = ok ]; then
  step "build: $BUILD_CMD"
  BUILD_START=$SECONDS
  if $BUILD_CMD >"$LOGS/build.log" 2>&1; then
    BUILD_STATUS="ok ($((SECONDS - BUILD_START)) s)"
  else
    BUILD_STATUS=failed
    grep -E 'error|FAILED' "$LOGS/build.log" | head -30
  fi
fi

if [ "${BUILD_STATUS%% *}" = ok ]; then
  step "test: $TEST_CMD"
  TEST_START=$SECONDS
  if $TEST_CMD >"$LOGS/ctest.log" 2>&1; then TESTS=passed; else TESTS=failed; fi
  TESTS="$TESTS ($((SECONDS - TEST_START)) s)"
  TEST_SUMMARY=$(grep -E 'tests passed|tests failed' "$LOGS/ctest.log" | tail -1)
  FAILED_TESTS=$(sed -n '/The following tests FAILED/,$p' "$LOGS/ctest.log" | grep -E '^\s+[0-9]+ - ' || true)
  SKIPPED_COUNT=$(grep -c -E '\*\*\*Skipped|Not Run' "$LOGS/ctest.log" || true)
  # Harness cases the CUDA backend could not run (Unsupported: an op or dtype it lacks).
  GAPS=$(grep -h -o -E '\[not on cuda:0\] [^:]*' "$LOGS/ctest.log" $BUILD/Testing/Temporary/LastTest.log 2>/dev/null | sort -u || true)
  echo "$TEST_SUMMARY"
fi

# The tensor-core kernels' shared-memory discipline on the real device: compute-sanitizer's
# racecheck (and memcheck) over the attention and grouped-GEMM harness cases and the quantization
# kernels' unit tests (small shapes; the tools are slow).
RACECHECK=skipped
SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null || true)
if [ "${BUILD_STATUS%% *}" = ok ] && [ "$GPU" != none ] && [ -n "$SANITIZER" ]; then
  RACECHECK=""
  for tool in racecheck memcheck; do
    step "sanitizer: $tool over the attention, grouped-GEMM and quantization kernels"
    if timeout 300 "$SANITIZER" --tool "$tool" --error-exitcode 9 "$BUILD/tests/mindiesd_tests" \
      --gtest_filter='Layer/AttentionHarness.*:Layer/GroupedMatmulHarness.*:QuantOps.*:QuantLinear.*:QuantAttention.*' >"$LOGS/$tool.log" 2>&1; then
      RACECHECK+="$tool clean; "
    else
      RACECHECK+="$tool FAILED (rc $?, see $tool.log); "
      grep -m5 -E 'Error|Hazard|Invalid' "$LOGS/$tool.log" || true
    fi
  done
fi

BENCH_OUT=""
if [ "$RUN_BENCH" = 1 ] && [ "${BUILD_STATUS%% *}" = ok ]; then
  # The CPU benchmarks (bench_gemm, bench_flux, ...) are for the CPU machines; bench_cuda runs
  # the GPU figures beside PyTorch on this machine's python3.
  b="$BUILD/benchmark/bench_cuda"
  if [ -x "$b" ]; then
    step "benchmark: $b --python python3"
    BENCH_OUT+=$'\n'"### bench_cuda"$'\n\n```\n'
    BENCH_OUT+=$(timeout 1200 "$b" --python python3 2>&1 | tee "$LOGS/bench_cuda.log" | tail -60)
    BENCH_OUT+=$'\n```\n'
  fi
fi

# ---- the report -------------------------------------------------------------------------------
{
  echo "# GPU check: $GPU, $DATE"
  echo
  echo "Written by \`scripts/gpu-check.sh${*:+ $*}\` in $((SECONDS - START)) s; logs in \`$LOGS/\` on the"
  echo "machine that ran it."
  echo
  if [ "$GPU" = none ]; then
    echo "**No GPU was visible**, so the CUDA tests skip themselves: at best this run shows that"
    echo "the CUDA build compiles, links and passes the CPU tests. It is not a GPU result."
    echo
  fi
  echo "| | |"
  echo "|---|---|"
  echo "| device | $GPU_DETAILS |"
  echo "| commit | $COMMIT |"
  echo "| toolchain | nvcc ${NVCC_V:-missing}, cmake $CMAKE_V, ninja $NINJA_V, c++ $CXX_V |"
  echo "| PyTorch | $TORCH_V |"
  echo "| cuDNN / NCCL wheels | ${CUDNN_DIR:-not found} / ${NCCL_DIR:-not found} |"
  echo "| missing dependencies | ${MISSING[*]:-none} |"
  echo
  echo "## Steps"
  echo
  echo "| step | command | result |"
  echo "|---|---|---|"
  echo "| configure | \`$CONFIGURE_CMD\` | $CONFIGURE |"
  echo "| build | \`$BUILD_CMD\` | $BUILD_STATUS |"
  echo "| test | \`$TEST_CMD\` | $TESTS |"
  echo
  if [ "$CONFIGURE" = failed ]; then
    echo "The configure step failed. The \`cuda\` preset needs the CPU build's dependencies too"
    echo "(oneDNN, libpng, FFmpeg, ICU, sentencepiece, nlohmann-json, GoogleTest), which a bare GPU"
    echo "machine does not have: use \`--bare\` (the \`cuda-bare\` preset) with build/deps from"
    echo "\`scripts/vendor-build-deps.sh\`, or \`--prebuilt\`."
    echo "Last lines of the configure log:"
    echo
    echo '```'
    tail -20 "$LOGS/configure.log"
    echo '```'
  fi
  if [ "$BUILD_STATUS" = failed ]; then
    echo "Build errors (first 30 lines):"
    echo
    echo '```'
    grep -E 'error|FAILED' "$LOGS/build.log" | head -30
    echo '```'
  fi
  if [ "$TESTS" != skipped ]; then
    echo "## Tests"
    echo
    echo "- summary: ${TEST_SUMMARY:-no summary line in the ctest log}"
    echo "- skipped (a test that found no device or no data skips itself): ${SKIPPED_COUNT:-0}"
    echo "- harness cases not run on CUDA (Unsupported there): $(echo -n "$GAPS" | grep -c . || true)"
    if [ -n "$GAPS" ]; then
      echo '```'
      echo "$GAPS" | head -40
      echo '```'
    fi
    echo "- compute-sanitizer on the attention and grouped-GEMM harnesses: ${RACECHECK}"
    if [ -n "$FAILED_TESTS" ]; then
      echo "- failed:"
      echo '```'
      echo "$FAILED_TESTS"
      echo '```'
    fi
  fi
  echo
  echo "## Benchmarks"
  if [ "$RUN_BENCH" = 1 ]; then
    echo "${BENCH_OUT:-none were built}"
  else
    echo
    echo "Not run (pass \`--bench\`)."
  fi
} >"$REPORT"

echo
echo "gpu-check: report written to $REPORT"
[ "$CONFIGURE" != failed ] && [ "${BUILD_STATUS%% *}" = ok ] && [ "${TESTS%% *}" = passed ] &&
  [ "$GPU" != none ]
