#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 600), seeded from the test fixtures.
# A crash stops the run with its input in fuzz/artifacts/<target>/ and a non-zero exit.
set -euo pipefail
seconds=${1:-600}
cd "$(dirname "$0")"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2
python3 make_seeds.py
# cargo fuzz passes unstable rustc flags; the stable toolchain accepts them this way.
export RUSTC_BOOTSTRAP=1
# Short runs (CI) take the unoptimised build: quicker to compile, overflow-checked.
profile=-O
if [ "$seconds" -lt 60 ]; then profile=--dev; fi
cargo fuzz build -s none "$profile"
mkdir -p logs
for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target"
    echo "fuzzing $target for ${seconds}s"
    cargo fuzz run -s none "$profile" "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -max_len=8192 -timeout=10 -print_final_stats=1 \
        >"logs/$target.log" 2>&1 || { tail -40 "logs/$target.log"; exit 1; }
    grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "logs/$target.log" | tail -2
done
