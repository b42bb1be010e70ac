#!/usr/bin/env bash
# `mindiesd generate` as a user runs it, on the tiny FLUX pipeline golden folder: it writes a
# valid PNG of the requested size, numbers the files of a batch, and rejects bad requests with
# exit code 1 (runtime error, message naming the problem) or 2 (usage) before doing any work.
# Usage: test_generate.sh MINDIESD_BINARY SOURCE_DIR
set -euo pipefail
bin="$1"
model="$2/tests/data/golden/flux/pipeline"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# PNG signature and IHDR width/height (big-endian u32 at bytes 16 and 20).
png_size() {
  [[ "$(od -An -tx1 -N8 "$1" | tr -d ' \n')" == "89504e470d0a1a0a" ]] || fail "$1 is not a PNG"
  local w h
  w=$(od -An -tu1 -j16 -N4 "$1" | awk '{print $1*16777216+$2*65536+$3*256+$4}')
  h=$(od -An -tu1 -j20 -N4 "$1" | awk '{print $1*16777216+$2*65536+$3*256+$4}')
  echo "${w}x${h}"
}

"$bin" generate --model "$model" --prompt "a red circle on a blue background" --steps 2 \
  --size 40x24 --seed 7 --dtype f32 --max-sequence-length 16 --out "$tmp/one.png" \
  >"$tmp/stdout" 2>"$tmp/stderr" || { cat "$tmp/stderr"; fail "generate exited $?"; }
[[ "$(png_size "$tmp/one.png")" == "40x24" ]] || fail "one.png is $(png_size "$tmp/one.png")"
grep -q "wrote $tmp/one.png" "$tmp/stdout" || fail "no 'wrote' line: $(cat "$tmp/stdout")"
grep -q "denoising" "$tmp/stderr" || fail "no progress bar"
grep -q "peak memory" "$tmp/stderr" || fail "no summary"

# The README's main command: no --model, the embedded shape model with its own defaults (64x64).
if [[ -d "$2/models/tiny-flux-shapes" ]]; then
  "$bin" generate --prompt "a large yellow star in the centre on a purple background" \
    --out "$tmp/default.png" >"$tmp/stdout" 2>"$tmp/stderr" || { cat "$tmp/stderr"; fail "default model run failed"; }
  [[ "$(png_size "$tmp/default.png")" == "64x64" ]] || fail "default.png is $(png_size "$tmp/default.png")"
  grep -q "wrote $tmp/default.png" "$tmp/stdout" || fail "no 'wrote' line for the default model"
fi

# Same seed, same bytes; a batch writes numbered files.
"$bin" generate --model "$model" --prompt "a red circle on a blue background" --steps 2 \
  --size 40x24 --seed 7 --dtype f32 --max-sequence-length 16 --out "$tmp/again.png" --quiet \
  >/dev/null 2>&1 || fail "second run failed"
cmp -s "$tmp/one.png" "$tmp/again.png" || fail "same seed gave different images"
"$bin" generate --model "$model" --prompt "a" --prompt "b" --num-images 2 --steps 1 \
  --size 32x32 --max-sequence-length 8 --out "$tmp/batch.png" --quiet >/dev/null 2>&1 ||
  fail "batch run failed"
for i in 0 1 2 3; do [[ -f "$tmp/batch-$i.png" ]] || fail "batch-$i.png missing"; done

# A step cache: the summary reports both CFG branches, the FLOP saved and the memory held.
"$bin" generate --model "$model" --prompt "a red circle on a blue background" --steps 8 \
  --size 32x32 --max-sequence-length 16 --negative-prompt "" --true-cfg 3 \
  --cache dit_block:start=2,interval=2,blocks=1-2 --out "$tmp/cached.png" --quiet \
  >/dev/null 2>"$tmp/stderr" || { cat "$tmp/stderr"; fail "cached run failed"; }
[[ "$(png_size "$tmp/cached.png")" == "32x32" ]] || fail "cached.png is $(png_size "$tmp/cached.png")"
grep -q "cond: 5 steps computed, 3 cached  \[CCC-C-C-\]" "$tmp/stderr" || fail "cond line: $(cat "$tmp/stderr")"
grep -q "uncond: 5 steps computed, 3 cached" "$tmp/stderr" || fail "no uncond line: $(cat "$tmp/stderr")"
grep -q "FLOP saved .*cache holds" "$tmp/stderr" || fail "no FLOP / memory line: $(cat "$tmp/stderr")"

# Quantization: on the fly (the summary names it), composed with a cache and FP8 attention; and a
# calibrated static W8A8 folder written by `mindiesd quantize`, which loads without float weights.
"$bin" generate --model "$model" --prompt "a red circle on a blue background" --steps 4 \
  --size 32x32 --max-sequence-length 16 --quant w4a16 --quant-attention fp8:rotate=1 \
  --cache dit_block:start=2,interval=2 --out "$tmp/quant.png" --quiet >/dev/null 2>"$tmp/stderr" ||
  { cat "$tmp/stderr"; fail "quantized run failed"; }
[[ "$(png_size "$tmp/quant.png")" == "32x32" ]] || fail "quant.png is $(png_size "$tmp/quant.png")"
grep -q "quant: 34 of 44 linear layers W4A16" "$tmp/stderr" || fail "no quant line: $(cat "$tmp/stderr")"
grep -q "quant: fp8 attention" "$tmp/stderr" || fail "no attention quant line: $(cat "$tmp/stderr")"
"$bin" quantize --model "$model" --algo w8a8 --smooth 0.5 --steps 2 --size 32x32 --quiet \
  --out "$tmp/q8" >"$tmp/stdout" 2>"$tmp/stderr" || { cat "$tmp/stderr"; fail "quantize failed"; }
grep -q "wrote $tmp/q8: 34 of 44 linear layers W8A8" "$tmp/stdout" || fail "quantize said: $(cat "$tmp/stdout")"
[[ -f "$tmp/q8/transformer/quant_model_description_w8a8.json" ]] || fail "no description written"
! ls "$tmp/q8/transformer" | grep -q diffusion_pytorch_model || fail "float weights copied"
"$bin" generate --model "$tmp/q8" --prompt "a red circle on a blue background" --steps 2 \
  --size 32x32 --max-sequence-length 16 --out "$tmp/q8.png" --quiet >/dev/null 2>"$tmp/stderr" ||
  { cat "$tmp/stderr"; fail "run from the quantized folder failed"; }
grep -q "W8A8 (from the folder)" "$tmp/stderr" || fail "no folder quant line: $(cat "$tmp/stderr")"
set +e
"$bin" quantize --model "$model" --algo w8a8 --out "$tmp/q8" >/dev/null 2>"$tmp/stderr"; rc=$?
set -e
[[ $rc == 1 ]] && grep -q "not empty" "$tmp/stderr" || fail "quantize over a folder: $rc $(cat "$tmp/stderr")"
set +e
"$bin" quantize --model "$model" --algo w2a2 --out "$tmp/q2" >/dev/null 2>"$tmp/stderr"; rc=$?
set -e
[[ $rc == 2 ]] && grep -q "unknown algorithm 'w2a2'" "$tmp/stderr" || fail "bad --algo: $rc $(cat "$tmp/stderr")"

# Bad requests: exit code and a message naming the problem, no output file.
expect_fail() {
  local code="$1" needle="$2"; shift 2
  set +e
  "$bin" generate "$@" --out "$tmp/bad.png" >"$tmp/stdout" 2>"$tmp/stderr"
  local rc=$?
  set -e
  [[ $rc == "$code" ]] || fail "expected exit $code, got $rc for: $* ($(cat "$tmp/stderr"))"
  grep -q -- "$needle" "$tmp/stderr" || fail "stderr lacks '$needle': $(cat "$tmp/stderr")"
  [[ ! -e "$tmp/bad.png" ]] || fail "an image was written for a bad request"
}
expect_fail 1 "not a multiple of 4" --model "$model" --prompt "x" --size 30x32
expect_fail 1 "steps must be in" --model "$model" --prompt "x" --steps 0 --size 32x32
expect_fail 1 "prompt 0 is empty" --model "$model" --prompt "" --size 32x32
expect_fail 1 "lacks components\|NotFound\|not found\|does not exist" --model "$tmp/nowhere" --prompt "x"
# Sparse attention: the summary says what ran sparse; composed with quantization and a cache.
"$bin" generate --model "$model" --prompt "a red circle on a blue background" --steps 4 \
  --size 128x128 --max-sequence-length 16 --quant w8a8_dynamic --cache dit_block:start=2,interval=2 \
  --attention sparse:type=ada_bsa,sparsity=0.6,block=16,start_step=1 --out "$tmp/sparse.png" \
  --quiet >/dev/null 2>"$tmp/stderr" || { cat "$tmp/stderr"; fail "sparse run failed"; }
[[ "$(png_size "$tmp/sparse.png")" == "128x128" ]] || fail "sparse.png is $(png_size "$tmp/sparse.png")"
grep -q "attention: sparse attention ada_bsa, sparsity 0.6, blocks of 16, from step 1.* calls sparse (mean kept blocks" \
  "$tmp/stderr" || fail "no sparse line: $(cat "$tmp/stderr")"
expect_fail 2 "type 'sliding' is not one of rf, ada_bsa" --model "$model" --prompt "x" \
  --attention sparse:type=sliding
expect_fail 2 "sparsity 1 must be in" --model "$model" --prompt "x" --attention sparse:sparsity=1
expect_fail 1 "cannot be combined with FP8 attention" --model "$model" --prompt "x" --size 32x32 \
  --steps 1 --quant-attention fp8 --attention sparse:type=rf,sparsity=0.5
expect_fail 1 "needs exactly one" --model "$model" --prompt "x" --size 32x32 \
  --latents "$2/tests/data/golden/flux/io.safetensors"
MINDIESD_MODEL="$tmp/nowhere" expect_fail 1 "no such directory" --prompt "x"
expect_fail 2 "--prompt TEXT is required" --model "$model"
expect_fail 2 "not a number" --model "$model" --prompt "x" --steps many
expect_fail 2 "expected WxH" --model "$model" --prompt "x" --size 32
expect_fail 2 "--device: cpu, cuda or cuda:N" --model "$model" --prompt "x" --device tpu
expect_fail 2 "unknown method 'fastcache'" --model "$model" --prompt "x" --cache fastcache
expect_fail 2 "teacache: unknown key 'tresh'" --model "$model" --prompt "x" --cache teacache:tresh=1
expect_fail 2 "step_interval 0" --model "$model" --prompt "x" --cache dit_block:interval=0
expect_fail 2 "unknown algorithm 'int3'" --model "$model" --prompt "x" --quant int3
expect_fail 2 "group must be" --model "$model" --prompt "x" --quant w4a16:group=48
expect_fail 2 "unknown scheme 'int8'" --model "$model" --prompt "x" --quant-attention int8
expect_fail 1 "already quantized\|holds a quantized checkpoint" --model "$tmp/q8" --prompt "x" --size 32x32 \
  --quant w8a8_dynamic
expect_fail 1 "fn 4 + bn 0 leave no block" --model "$model" --prompt "x" --size 32x32 \
  --cache dbcache:fn=4
if ! nvidia-smi -L >/dev/null 2>&1; then  # no GPU: asking for one is a clear runtime error
  expect_fail 1 "cuda" --model "$model" --prompt "x" --size 32x32 --device cuda
fi
# A folder's mindiesd_defaults.json: its settings apply without flags, flags override them, and a
# bad file is a clear error. (A copy of the golden folder made of links, plus the file.)
mkdir "$tmp/withdefaults"
for f in "$model"/*; do ln -s "$f" "$tmp/withdefaults/$(basename "$f")"; done
printf '{"height": 24, "width": 40, "num_inference_steps": 1, "max_sequence_length": 8}' \
  >"$tmp/withdefaults/mindiesd_defaults.json"
"$bin" generate --model "$tmp/withdefaults" --prompt "x" --out "$tmp/d.png" --quiet >/dev/null 2>&1 ||
  fail "run with mindiesd_defaults.json failed"
[[ "$(png_size "$tmp/d.png")" == "40x24" ]] || fail "defaults not applied: $(png_size "$tmp/d.png")"
"$bin" generate --model "$tmp/withdefaults" --prompt "x" --size 32x32 --out "$tmp/d2.png" --quiet \
  >/dev/null 2>&1 || fail "override run failed"
[[ "$(png_size "$tmp/d2.png")" == "32x32" ]] || fail "--size did not override the defaults"
printf '{"height": 24, "sizee": 3}' >"$tmp/withdefaults/mindiesd_defaults.json"
expect_fail 1 "unknown setting 'sizee'" --model "$tmp/withdefaults" --prompt "x"
printf '{"height": -24}' >"$tmp/withdefaults/mindiesd_defaults.json"
expect_fail 1 "'height' must be a positive integer" --model "$tmp/withdefaults" --prompt "x"
echo "cli generate: ok"
