#!/usr/bin/env bash
# `mindiesd generate` on the tiny Wan 2.1 T2V golden folder, as a user runs it: an MP4 that
# ffprobe reads with the requested frame count, size and fps; a GIF; a folder of PNG frames;
# numbered files for a batch; and bad requests rejected with exit code 1 (runtime error naming
# the problem) or 2 (usage) before any work.
# Usage: test_generate_video.sh MINDIESD_BINARY SOURCE_DIR
set -euo pipefail
bin="$1"
model="$2/tests/data/golden/wan_pipeline/t2v"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v ffprobe >/dev/null || fail "ffprobe is missing (scripts/install-deps.sh installs ffmpeg)"

run() { "$bin" generate --model "$model" --prompt "a cat walks on the grass" --steps 2 \
  --size 48x32 --dtype f32 --max-sequence-length 16 "$@"; }
# codec,width,height,rate,frames of the first video stream
probe() {
  ffprobe -v error -count_frames -select_streams v:0 \
    -show_entries stream=codec_name,width,height,r_frame_rate,nb_read_frames -of csv=p=0 "$1"
}

run --frames 9 --fps 8 --seed 3 --out "$tmp/a.mp4" >"$tmp/stdout" 2>"$tmp/stderr" ||
  { cat "$tmp/stderr"; fail "mp4 run exited $?"; }
p="$(probe "$tmp/a.mp4")"
[[ "$p" == h264,48,32,8/1,9 || "$p" == mpeg4,48,32,8/1,9 ]] || fail "a.mp4 probes as '$p'"
grep -q "wrote $tmp/a.mp4 (48x32, 9 frames at 8 fps" "$tmp/stdout" || fail "no 'wrote' line"
grep -q "denoising" "$tmp/stderr" || fail "no progress bar"
grep -q "peak memory" "$tmp/stderr" || fail "no summary"

run --frames 5 --out "$tmp/b.gif" --quiet >/dev/null 2>&1 || fail "gif run failed"
p="$(probe "$tmp/b.gif")"
[[ "$p" == gif,48,32,* && "$p" == *,5 ]] || fail "b.gif probes as '$p'"

run --frames 5 --out "$tmp/frames/" --quiet >/dev/null 2>&1 || fail "png-frames run failed"
[[ "$(ls "$tmp/frames" | grep -c '^frame_[0-9]*\.png$')" == 5 ]] || fail "frames/: $(ls "$tmp/frames")"

run --frames 1 --num-videos 2 --out "$tmp/n.mp4" --quiet >/dev/null 2>&1 || fail "batch run failed"
[[ -s "$tmp/n-0.mp4" && -s "$tmp/n-1.mp4" ]] || fail "batch files: $(ls "$tmp")"

# Quantized video: int8 linears and FP8 attention, named in the summary.
run --frames 5 --steps 2 --quant w8a8_dynamic --quant-attention fp8 --out "$tmp/q.gif" --quiet \
  >/dev/null 2>"$tmp/err" || { cat "$tmp/err"; fail "quantized run failed"; }
grep -q "quant: .* linear layers W8A8_DYNAMIC" "$tmp/err" || fail "no quant line: $(cat "$tmp/err")"
run --frames 9 --size 192x128 --steps 2 --attention sparse:type=rf,sparsity=0.5,block=32 \
  --out "$tmp/s.gif" --quiet >/dev/null 2>"$tmp/err" || { cat "$tmp/err"; fail "sparse run failed"; }
grep -q "attention: sparse attention rf, sparsity 0.5, blocks of 32, from step 0; 8 calls sparse" \
  "$tmp/err" || fail "no sparse line: $(cat "$tmp/err")"

# A step cache on video: both CFG branches reported.
run --frames 5 --steps 6 --cache dit_block:start=2,interval=2 --out "$tmp/c.gif" --quiet \
  >/dev/null 2>"$tmp/err" || { cat "$tmp/err"; fail "cached run failed"; }
grep -q "cond: 4 steps computed, 2 cached  \[CCC-C-\]" "$tmp/err" || fail "cond line: $(cat "$tmp/err")"
grep -q "uncond: 4 steps computed, 2 cached" "$tmp/err" || fail "no uncond line: $(cat "$tmp/err")"

expect_fail() {  # exit code, message regex, args...
  local code="$1" msg="$2"
  shift 2
  set +e
  run "$@" --out "$tmp/bad.mp4" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  set -e
  [[ $rc == "$code" ]] || fail "expected exit $code, got $rc for: $* ($(cat "$tmp/err"))"
  grep -q -- "$msg" "$tmp/err" || fail "no '$msg' in: $(cat "$tmp/err")"
  [[ ! -e "$tmp/bad.mp4" ]] || fail "a failed run left $tmp/bad.mp4"
}
expect_fail 1 "num_frames must be 4k + 1" --frames 8
expect_fail 1 "not a multiple of 16x16" --frames 5 --size 40x32
expect_fail 2 "not a number" --frames many
expect_fail 2 "max_continuous / max_cached\|must be -1" --cache fbcache:max_cached=-2
expect_fail 2 "--fps must be in" --fps 0
expect_fail 2 "unknown option '--true-cfg'" --true-cfg 2
set +e
run --frames 5 --out "$tmp/x.avi" >/dev/null 2>"$tmp/err"
rc=$?
set -e
[[ $rc == 2 ]] && grep -q ".mp4, .gif or a folder" "$tmp/err" || fail "bad --out extension: $rc"
# Image-to-video: the first frame from a PNG; a text-to-video folder refuses an image.
i2v="$2/tests/data/golden/wan_pipeline/i2v"
"$bin" generate --model "$i2v" --image "$i2v/input.png" --prompt "a cat" --steps 2 --size 48x32 \
  --frames 5 --dtype f32 --out "$tmp/i.mp4" --quiet >/dev/null 2>"$tmp/err" ||
  { cat "$tmp/err"; fail "i2v run failed"; }
p="$(probe "$tmp/i.mp4")"
[[ "$p" == *,48,32,16/1,5 ]] || fail "i.mp4 probes as '$p'"
set +e
"$bin" generate --model "$i2v" --prompt "a cat" --size 48x32 --frames 5 --out "$tmp/j.mp4" \
  >/dev/null 2>"$tmp/err"
rc=$?
set -e
[[ $rc == 1 ]] && grep -q "needs an input image" "$tmp/err" || fail "i2v without --image: $rc"
expect_fail 1 "text-to-video model" --frames 5 --image "$i2v/input.png"
head -c 100 "$i2v/input.png" >"$tmp/trunc.png"
expect_fail 1 "trunc.png" --frames 5 --image "$tmp/trunc.png"
echo "cli generate video: ok"
