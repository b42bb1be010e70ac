#!/usr/bin/env bash
# Puts cudnn-frontend's C++ headers (header-only; cuDNN's fused attention for the CUDA backend)
# in build/deps/cudnn_frontend/include, from PyPI's nvidia-cudnn-frontend wheel (the headers
# are in the wheel's include/; nothing is installed). Idempotent; the cuda preset finds them
# there. A machine without network access can be given the folder instead.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=1.32.0
DEST=build/deps/cudnn_frontend
if [ -f "$DEST/include/cudnn_frontend.h" ] && [ "$(cat "$DEST/VERSION" 2>/dev/null)" = "$VERSION" ]; then
  exit 0
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
# Any wheel of the release carries the same headers: ask for one explicitly so that the
# machine's own Python version does not matter.
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux_2_28_x86_64 --dest "$TMP" "nvidia-cudnn-frontend==$VERSION"
rm -rf "$DEST"
mkdir -p "$DEST"
python3 - "$TMP" "$DEST" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith("include/")]
    for n in names:
        z.extract(n, sys.argv[2])
print(f"fetch-cudnn-frontend: {len(names)} headers from {wheel.rsplit('/', 1)[-1]}")
PY
echo "$VERSION" >"$DEST/VERSION"
