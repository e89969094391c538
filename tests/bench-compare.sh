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

measure() { # name, command...
  local name="$1"; shift
  local out
  /usr/bin/time -f "%e %M" -o /tmp/bench-time "$@" >/dev/null 2>&1 || true
  out=$(tail -1 /tmp/bench-time)
  printf '%-16s %8.2f s %8.1f MiB\n' "$name" "$(echo "$out" | cut -d' ' -f1)" "$(echo "$out" | awk '{print $2/1024}')"
  echo "$out" | cut -d' ' -f1 > "/tmp/bench-$name"
}
echo "log: $log ($(wc -l < "$log") lines)"
measure rg-c rg -c 'failed for|SecurityEvent="(InvalidPassword|ChallengeResponseFailed|InvalidAccountID)"' "$log"
measure sipwarden target/release/sipwarden check-log --format json "$log"
measure fail2ban-regex fail2ban-regex "$log" /etc/fail2ban/filter.d/asterisk.conf
awk -v s="$(cat /tmp/bench-sipwarden)" -v f="$(cat /tmp/bench-fail2ban-regex)" -v r="$(cat /tmp/bench-rg-c)" \
  'BEGIN { printf "fail2ban-regex / sipwarden = %.0fx   sipwarden / rg -c = %.1fx\n", f/s, s/r }'
