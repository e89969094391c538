#!/usr/bin/env bash
# check-log next to fail2ban-regex (Debian's fail2ban, its asterisk filter) and
# `rg -c` (reading the same bytes with one regex: the floor) on the same log.
#   tests/bench-compare.sh [LOG]     (default: bench-data/asterisk-1M.log, generated if missing)
#   RUNS=N: turns of the fast tools on each side of the fail2ban run (default 7)
set -euo pipefail
cd "$(dirname "$0")/.."
log="${1:-bench-data/asterisk-1M.log}"
missing=()
command -v fail2ban-regex >/dev/null || missing+=(fail2ban)
command -v rg >/dev/null || missing+=(ripgrep)
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -f "$log" ]; then
  mkdir -p "$(dirname "$log")"
  python3 tests/bench_gen_asterisk_log.py --lines 1000000 --seed 42 --out "$log"
fi
cargo build --release --locked --bin sipwarden >/dev/null 2>&1

# One run of a command: its wall time and peak memory appended to /tmp/bench-<name>.
run_once() { # name, command...
  local name="$1"; shift
  local t0 t1
  t0=$(date +%s%N)
  /usr/bin/time -f "%M" -o /tmp/bench-time "$@" >/dev/null 2>&1 || true
  t1=$(date +%s%N)
  awk -v a="$t0" -v b="$t1" -v k="$(tail -1 /tmp/bench-time)" \
    'BEGIN { printf "%.4f %.1f\n", (b - a) / 1e9, k / 1024 }' >> "/tmp/bench-$name"
}
# Best and median wall time, and the peak memory of the best run.
report() { # name
  sort -n "/tmp/bench-$1" | awk -v name="$1" '{ t[NR] = $1; m[NR] = $2 }
    END { printf "%-16s %8.3f s %8.1f MiB   (best of %d; median %.3f s)\n", name, t[1], m[1], NR, t[int((NR + 1) / 2)] }'
}
best() { sort -n "/tmp/bench-$1" | head -1 | cut -d' ' -f1; }

rg_c() { run_once rg-c rg -c 'failed for|SecurityEvent="(InvalidPassword|ChallengeResponseFailed|InvalidAccountID)"' "$log"; }
sipwarden() { run_once sipwarden target/release/sipwarden check-log --format json "$log"; }
rm -f /tmp/bench-rg-c /tmp/bench-sipwarden /tmp/bench-fail2ban-regex
echo "log: $log ($(wc -l < "$log") lines)"
# The fast tools run in turns, half before and half after fail2ban's long run, so all
# three meet the same machine (a shared VM's speed drifts from minute to minute).
rounds=${RUNS:-7}
for _ in $(seq "$rounds"); do rg_c; sipwarden; done
run_once fail2ban-regex fail2ban-regex "$log" /etc/fail2ban/filter.d/asterisk.conf
for _ in $(seq "$rounds"); do rg_c; sipwarden; done
report rg-c
report sipwarden
report fail2ban-regex
awk -v s="$(best sipwarden)" -v f="$(best fail2ban-regex)" -v r="$(best rg-c)" \
  'BEGIN { printf "fail2ban-regex / sipwarden = %.0fx   sipwarden / rg -c = %.1fx\n", f/s, s/r }'
