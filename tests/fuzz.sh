#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 60) with cargo-fuzz (installed if
# missing). cargo-fuzz needs nightly compiler flags: it uses a nightly toolchain if one is
# installed, else the stable one with RUSTC_BOOTSTRAP=1 (the same flags, unlocked).
# A crash stops the run with the crashing input under crates/*/fuzz/artifacts/; turn it
# into a regression test before fixing it.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked >&2
fi
toolchain=()
if rustup run nightly rustc --version >/dev/null 2>&1; then
  toolchain=(+nightly)
else
  echo "no nightly toolchain: fuzzing with stable and RUSTC_BOOTSTRAP=1" >&2
  export RUSTC_BOOTSTRAP=1
fi

for crate in domain http; do
  dir="crates/$crate/fuzz"
  for target in $(cargo "${toolchain[@]}" fuzz list --fuzz-dir "$dir"); do
    echo "fuzzing $crate/$target for ${seconds}s" >&2
    mkdir -p "$dir/corpus/$target"
    cargo "${toolchain[@]}" fuzz run --fuzz-dir "$dir" "$target" "$dir/corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
      | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|thread|panicked)" || true
    # grep hides libFuzzer's chatter; the pipeline's status is cargo fuzz's.
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "fuzz target $crate/$target failed" >&2; exit 1; }
  done
done
echo "fuzzing done: no crashes" >&2
