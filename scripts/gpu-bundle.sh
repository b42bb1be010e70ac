#!/usr/bin/env bash
# Packs what `scripts/gpu-check.sh --prebuilt` needs on a bare GPU machine into .gpu/ (git-ignored;
# name it in the device tool's `carry`):
#   .gpu/bundle.tar.xz  build/cuda's test and benchmark executables, the CLI and the ctest files
#                       (their paths are absolute: the GPU machine checks the repo out at the same
#                       path), plus the shared libraries of the CPU side that such a machine lacks
#                       (oneDNN, ICU, sentencepiece, libpng, ...) under .gpu-lib/
#   .gpu/whl/           diffusers (and importlib_metadata) wheels for the PyTorch CUDA peer
# Build first: cmake --preset cuda && cmake --build --preset cuda -j2
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/cuda
[ -x $B/tests/mindiesd_tests ] || { echo "gpu-bundle: build the cuda preset first" >&2; exit 1; }
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
rm -rf .gpu/stage && mkdir -p .gpu/stage/.gpu-lib .gpu/whl
files=($B/CTestTestfile.cmake $B/tests/CTestTestfile.cmake $B/tests/mindiesd_tests
  "$B/tests/mindiesd_tests[1]_include.cmake" "$B/tests/mindiesd_tests[1]_tests.cmake"
  $B/mindiesd $B/mindiesd_cuda_emulation $B/mindiesd_cuda_attention_emulation
  $B/benchmark/bench_cuda)
for f in "${files[@]}"; do
  [ -f "$f" ] && { mkdir -p ".gpu/stage/$(dirname "$f")"; cp "$f" ".gpu/stage/$f"; }
done
# What the executables were built from, for the report on the GPU machine.
{
  echo "commit $(git rev-parse --short=12 HEAD)$([ -n "$(git status --porcelain)" ] && echo ' (with uncommitted changes)')"
  echo "built $(date -u +%Y-%m-%dT%H:%MZ) on $(. /etc/os-release && echo "$PRETTY_NAME"), $(nvcc --version | grep -o 'release [0-9.]*')"
} >.gpu/stage/$B/BUILD_INFO
# Every library the executables load except glibc's, the C++ runtime and CUDA's own (the GPU
# machine has newer ones of those).
ldd $B/tests/mindiesd_tests $B/mindiesd | awk '/=>/ {print $3}' | sort -u |
  grep -v -E '/(libc\.|libm\.|libdl\.|libpthread|librt\.|libgcc_s|libstdc\+\+|libcudart|libcublas|libcudnn)' |
  while read -r lib; do cp -L "$lib" .gpu/stage/.gpu-lib/; done
XZ_OPT=-T2 tar cJf .gpu/bundle.tar.xz -C .gpu/stage .
rm -rf .gpu/stage
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform any -d .gpu/whl diffusers==0.42.1 importlib_metadata
du -sh .gpu/bundle.tar.xz .gpu/whl
