#!/usr/bin/env bash
# Packs what `scripts/gpu-check.sh --prebuilt` needs on a bare GPU machine into .gpu/ (git-ignored).
# The device tool sends at most 64 MiB with the working tree (about 40 MB of it tracked files),
# so the bundle comes in two parts, each carried by its own call on the same warm machine:
#   .gpu/libs.tar.xz  the shared libraries of the CPU side that such a machine lacks (oneDNN,
#                     ICU, sentencepiece, libpng, ...); FFmpeg's are replaced by empty stubs of
#                     the same sonames and symbol versions (the executables bind lazily, and the
#                     GPU checks never write a video), which keeps out the 36 MB of codecs they
#                     pull in. First call: `mkdir -p .gpu/lib && tar xJf .gpu/libs.tar.xz -C .gpu/lib`
#                     carrying .gpu/libs.tar.xz; the folder stays on the machine between calls.
#   .gpu/bin.tar.xz   build/cuda's test binary and bench_cuda with the ctest files (absolute
#                     paths: the GPU machine checks the repo out at the same path) and BUILD_INFO.
#   .gpu/whl/         diffusers (and importlib_metadata) wheels for the PyTorch CUDA peer.
#   Second call: `scripts/gpu-check.sh --prebuilt --bench` carrying .gpu/bin.tar.xz and .gpu/whl.
# Build first: cmake --preset cuda && cmake --build --preset cuda -j2
set -euo pipefail
cd "$(dirname "$0")/.."
B=build/cuda
[ -x $B/tests/mindiesd_tests ] || { echo "gpu-bundle: build the cuda preset first" >&2; exit 1; }
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
rm -rf .gpu/stage .gpu/libs.tar.xz .gpu/bin.tar.xz .gpu/bundle.tar.xz
mkdir -p .gpu/stage/bin .gpu/stage/lib .gpu/stage/stubs .gpu/whl
EXES=($B/tests/mindiesd_tests $B/benchmark/bench_cuda)

# ---- FFmpeg stubs: the sonames and version nodes the executables ask for, no code ----------
for lib in $(ldd "${EXES[@]}" | awk '/=>/ {print $1}' | grep -E '^lib(avcodec|avformat|avutil|swscale|swresample)\.so' | sort -u); do
  node=$(readelf -V "${EXES[@]}" 2>/dev/null | awk -v f="$lib" '$0 ~ "File: "f {getline; print $3}' | head -1)
  echo "${node:-STUB} { local: *; };" >.gpu/stage/stubs/$lib.map
  echo 'void mindiesd_ffmpeg_stub(void) {}' >.gpu/stage/stubs/stub.c
  cc -shared -fPIC -Wl,-soname,"$lib" -Wl,--version-script=.gpu/stage/stubs/$lib.map \
    .gpu/stage/stubs/stub.c -o .gpu/stage/lib/"$lib"
done

# ---- the CPU side's libraries: what the executables load with the stubs in place, except
# glibc's, the C++ runtime and CUDA's own (the GPU machine has newer ones of those: its toolkit
# and PyTorch's nvidia wheels, which gpu-check.sh puts on the library path).
LD_LIBRARY_PATH=".gpu/stage/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ldd "${EXES[@]}" |
  awk '/=>/ {print $3}' | sort -u | grep -v '^\.gpu/stage' |
  grep -v -E '/(libc\.|libm\.|libdl\.|libpthread|librt\.|libgcc_s|libstdc\+\+|libcudart|libcublas|libcudnn|libnvrtc)' |
  while read -r lib; do cp -L "$lib" .gpu/stage/lib/; done

# ---- the executables and ctest's files ----
files=($B/CTestTestfile.cmake $B/tests/CTestTestfile.cmake "${EXES[@]}"
  "$B/tests/mindiesd_tests[1]_include.cmake" "$B/tests/mindiesd_tests[1]_tests.cmake")
for f in "${files[@]}"; do
  [ -f "$f" ] && { mkdir -p ".gpu/stage/bin/$(dirname "$f")"; cp "$f" ".gpu/stage/bin/$f"; }
done
# What the executables were built from, for the report on the GPU machine.
{
  echo "commit $(git rev-parse --short=12 HEAD)$([ -n "$(git status --porcelain)" ] && echo ' (with uncommitted changes)')"
  echo "built $(date -u +%Y-%m-%dT%H:%MZ) on $(. /etc/os-release && echo "$PRETTY_NAME"), $(nvcc --version | grep -o 'release [0-9.]*')"
} >.gpu/stage/bin/$B/BUILD_INFO

XZ_OPT="-T2 -9" tar cJf .gpu/libs.tar.xz -C .gpu/stage/lib .
XZ_OPT="-T2 -9" tar cJf .gpu/bin.tar.xz -C .gpu/stage/bin .
rm -rf .gpu/stage
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform any -d .gpu/whl diffusers==0.42.1 importlib_metadata
du -sh .gpu/libs.tar.xz .gpu/bin.tar.xz .gpu/whl
