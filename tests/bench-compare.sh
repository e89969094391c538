#!/usr/bin/env bash
# check-log next to fail2ban-regex (Debian's fail2ban, its asterisk filter) and
# `rg -c` (reading the same bytes with one regex: the floor) on the same log.
#   tests/bench-compare.sh [LOG]     (default: bench-data/asterisk-1M.log, generated if missing)
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

# Best wall time of RUNS runs (and the peak memory of that run): the page cache is
# warm for all three after the first run.
measure() { # name, runs, command...
  local name="$1" runs="$2"; shift 2
  local best="" best_mem=""
  for _ in $(seq "$runs"); do
    local t0 t1 secs kib
    t0=$(date +%s%N)
    /usr/bin/time -f "%M" -o /tmp/bench-time "$@" >/dev/null 2>&1 || true
    t1=$(date +%s%N)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')
    kib=$(tail -1 /tmp/bench-time)
    if [ -z "$best" ] || awk -v a="$secs" -v b="$best" 'BEGIN { exit !(a < b) }'; then
      best=$secs best_mem=$kib
    fi
  done
  printf '%-16s %8.3f s %8.1f MiB   (best of %s)\n' "$name" "$best" "$(awk -v k="$best_mem" 'BEGIN { print k/1024 }')" "$runs"
  echo "$best" > "/tmp/bench-$name"
}
echo "log: $log ($(wc -l < "$log") lines)"
measure rg-c 7 rg -c 'failed for|SecurityEvent="(InvalidPassword|ChallengeResponseFailed|InvalidAccountID)"' "$log"
measure sipwarden 7 target/release/sipwarden check-log --format json "$log"
measure fail2ban-regex 1 fail2ban-regex "$log" /etc/fail2ban/filter.d/asterisk.conf
awk -v s="$(cat /tmp/bench-sipwarden)" -v f="$(cat /tmp/bench-fail2ban-regex)" -v r="$(cat /tmp/bench-rg-c)" \
  'BEGIN { printf "fail2ban-regex / sipwarden = %.0fx   sipwarden / rg -c = %.1fx\n", f/s, s/r }'
