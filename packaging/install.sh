#!/usr/bin/env bash
# Installs sipwarden on this machine (run as root):
#   binary  /usr/local/bin/sipwarden
#   unit    /etc/systemd/system/sipwarden.service
#   config  /etc/sipwarden/sipwarden.toml   (an existing one is never overwritten)
#   data    /var/lib/sipwarden
#
# Options: --binary PATH (default: build with cargo), --root DIR (install below DIR,
# without touching systemd: for packaging and tests).
set -euo pipefail
cd "$(dirname "$0")/.."

root=""
binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    *) echo "usage: $0 [--binary PATH] [--root DIR]" >&2; exit 2 ;;
  esac
done

if [ -z "$binary" ]; then
  cargo build --release --locked --bin sipwarden
  binary=target/release/sipwarden
fi

install -D -m 0755 "$binary" "$root/usr/local/bin/sipwarden"
install -D -m 0644 packaging/sipwarden.service "$root/etc/systemd/system/sipwarden.service"
install -d -m 0755 "$root/etc/sipwarden"
if [ -e "$root/etc/sipwarden/sipwarden.toml" ]; then
  echo "kept the existing $root/etc/sipwarden/sipwarden.toml"
else
  # The service's data directory, so an admin's `sipwarden --config ...` finds it too.
  sed 's|^data_dir = "sipwarden-data"|data_dir = "/var/lib/sipwarden"|' sipwarden.example.toml \
    > "$root/etc/sipwarden/sipwarden.toml"
  chmod 0640 "$root/etc/sipwarden/sipwarden.toml"
  echo "installed $root/etc/sipwarden/sipwarden.toml: set logs and trusted before starting"
fi
install -d -m 0750 "$root/var/lib/sipwarden"

if [ -z "$root" ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload
  echo "start with: systemctl enable --now sipwarden; then: journalctl -u sipwarden (setup address)"
fi
