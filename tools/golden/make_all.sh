#!/usr/bin/env bash
# Regenerates every golden under tests/data/golden/ (deterministic, CPU only, no downloads).
# Usage: tools/golden/make_all.sh [PYTHON]
#   PYTHON defaults to .venv-golden/bin/python (create it with tools/golden/install.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${1:-$repo/.venv-golden/bin/python}"
if [[ ! -x "$python" ]] && ! command -v "$python" >/dev/null; then
  echo "no python at $python: run tools/golden/install.sh first, or pass one" >&2
  exit 1
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DIFFUSERS_OFFLINE=1 PYTHONHASHSEED=0

for gen in "$here"/make_*_golden.py; do
  echo "== $(basename "$gen")" >&2
  "$python" "$gen"
done
du -sh "$repo/tests/data/golden"/* >&2
