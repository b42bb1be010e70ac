#!/usr/bin/env bash
# Copies the two header/source-only dependencies of a MINDIESD_CPU_DEPS=OFF build (nlohmann-json
# headers, GoogleTest sources) from this machine's Debian packages into build/deps, so a machine
# with only the CUDA toolkit (the GPU machines, which reach no package registry) can configure
# the cuda-bare preset when build/deps travels with the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/deps/nlohmann_json/include
cp -r /usr/include/nlohmann build/deps/nlohmann_json/include/
rm -rf build/deps/googletest
cp -r /usr/src/googletest build/deps/googletest
du -sh build/deps/nlohmann_json build/deps/googletest
