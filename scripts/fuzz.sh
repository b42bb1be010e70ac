#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang + ASan + UBSan in build/fuzz and runs each
# for N seconds (default 60), starting from the committed seed corpus in tests/fuzz/corpus/.
# Prints each target's executed-input count; exits non-zero if any target finds a crash (the
# reproducer is saved under build/fuzz/artifacts/).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      targets: safetensors config png tokenizers quant specs (default: all)
#   JOBS=4 scripts/fuzz.sh 600 safetensors     parallel build jobs (default 1)
set -euo pipefail

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(safetensors config png tokenizers quant specs); fi
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 [SECONDS] [TARGET...]" >&2
  exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build/fuzz"

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
  -DMINDIESD_FUZZ=ON -DMINDIESD_TESTS=OFF -DMINDIESD_BENCHMARKS=OFF >/dev/null
ninja -C "$build" -j "${JOBS:-1}" $(printf 'fuzz_%s ' "${targets[@]}")

status=0
summary=()
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/fuzz_$t"
  seeds="$root/tests/fuzz/corpus/$t"
  work="$build/corpus/$t"  # inputs found by earlier runs are kept and reused
  artifacts="$build/artifacts"
  log="$build/fuzz_$t.log"
  mkdir -p "$work" "$artifacts"
  dict=()
  if [ -f "$root/tests/fuzz/$t.dict" ]; then dict=(-dict="$root/tests/fuzz/$t.dict"); fi
  echo "== fuzz_$t: ${seconds}s"
  rc=0
  "$bin" "$work" "$seeds" "${dict[@]}" -max_total_time="$seconds" -max_len=8192 \
    -print_final_stats=1 -artifact_prefix="$artifacts/$t-" >"$log" 2>&1 || rc=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)"
  if [ "$rc" -ne 0 ]; then
    status=1
    echo "!! fuzz_$t FAILED (exit $rc); last lines of $log:"
    tail -n 40 "$log"
    summary+=("fuzz_$t: FAILED after ${execs:-?} execs (see $log, artifacts in $artifacts)")
  else
    summary+=("fuzz_$t: ${execs:-?} execs in ${seconds}s, ${cov:-cov: ?}, corpus $(ls "$work" | wc -l) files")
  fi
done

echo
printf '%s\n' "${summary[@]}"
exit "$status"
