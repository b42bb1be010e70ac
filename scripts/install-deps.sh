#!/usr/bin/env bash
# Installs every Debian package that mindiesd's build, tests and fuzzers need.
# Run as root (or with sudo). Idempotent. `--list` prints the packages and installs nothing
# (scripts/check-deps.py checks the build against that list).
set -euo pipefail
PKGS=(
  build-essential cmake ninja-build pkg-config git
  libdnnl-dev            # oneDNN: GEMM and convolution on CPU
  ocl-icd-opencl-dev     # dnnl-config.cmake calls find_package(OpenCL REQUIRED); only a Recommends of libdnnl-dev
  nlohmann-json3-dev     # config.json / safetensors headers
  libpng-dev zlib1g-dev  # PNG in and out
  libsentencepiece-dev   # T5/UMT5 tokenizers (spiece.model)
  libicu-dev             # Unicode normalisation and categories for the CLIP tokenizer
  libavcodec-dev libavformat-dev libswscale-dev libavutil-dev  # MP4 / GIF video output
  ffmpeg                 # ffprobe: the video writer's tests check what they wrote
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev  # libFuzzer targets (clang -fsanitize=fuzzer)
  libomp-14-dev          # OpenMP for clang (the fuzz build); GCC's libgomp comes with build-essential
  python3 python3-pip    # pip download: cudnn-frontend's headers (scripts/fetch-cudnn-frontend.sh)
)
if [ "${1:-}" = --list ]; then
  printf '%s\n' "${PKGS[@]}"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "install-deps: all ${#PKGS[@]} packages present"
