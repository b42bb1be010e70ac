#!/usr/bin/env bash
# Creates .venv-golden/ in the repository root (gitignored) with the pinned packages from
# tools/golden/requirements.txt, for the golden generators and benchmark/torch_gemm.py.
# Usage: tools/golden/install.sh [PYTHON]   (default: python3; needs Python >= 3.10 with venv)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${1:-python3}"
venv="$repo/.venv-golden"

if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --upgrade pip >/dev/null
"$venv/bin/python" -m pip install -r "$here/requirements.txt"
# Only for the CLIP BPE merges file it ships (tokenizer_assets.py); --no-deps keeps torch pinned.
"$venv/bin/python" -m pip install --no-deps open-clip-torch==3.3.0
"$venv/bin/python" -c 'import torch, diffusers, transformers, safetensors, numpy
print("golden venv ready:", "torch", torch.__version__, "diffusers", diffusers.__version__)'
