#!/usr/bin/env bash
# Installs sipwarden on this machine (run as root):
#   binary  /usr/local/bin/sipwarden
#   unit    /etc/systemd/system/sipwarden.service
#   config  /etc/sipwarden/sipwarden.toml   (an existing one is never overwritten)
#   data    /var/lib/sipwarden
#
# Options: --binary PATH (default: build with cargo), --root DIR (install below DIR,
# without touching systemd or the firewall: for packaging and tests).
#
# --uninstall stops and removes the service, the binary and sipwarden's firewall rules
# (every ban is lifted); the configuration and the data (bans, history, evidence) stay
# unless --purge is given too.
set -euo pipefail
cd "$(dirname "$0")/.."

root=""
binary=""
uninstall=""
purge=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) root="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    --uninstall) uninstall=1; shift ;;
    --purge) purge=1; shift ;;
    *) echo "usage: $0 [--binary PATH] [--root DIR] [--uninstall [--purge]]" >&2; exit 2 ;;
  esac
done

if [ -n "$uninstall" ]; then
  on_this_machine=""
  [ -z "$root" ] && on_this_machine=1
  if [ -n "$on_this_machine" ] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now sipwarden 2>/dev/null || true
  fi
  rm -f "$root/etc/systemd/system/sipwarden.service" "$root/usr/local/bin/sipwarden"
  if [ -n "$on_this_machine" ] && command -v nft >/dev/null 2>&1; then
    nft delete table inet sipwarden 2>/dev/null && echo "removed sipwarden's firewall rules" || true
  fi
  if [ -n "$purge" ]; then
    rm -rf "$root/etc/sipwarden" "$root/var/lib/sipwarden"
    echo "removed $root/etc/sipwarden and $root/var/lib/sipwarden"
  else
    echo "kept $root/etc/sipwarden and $root/var/lib/sipwarden (--purge removes them)"
  fi
  # An include line in acl.conf names sipwarden's ACL file: deleting that file would
  # make Asterisk refuse acl.conf, so the ACLs stay until removed on purpose.
  echo "the ACLs sipwarden wrote into /etc/asterisk stay in force: remove the #include"
  echo "sipwarden_acl.conf line from acl.conf and the blocks marked sipwarden to drop them"
  if [ -n "$on_this_machine" ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload
  fi
  exit 0
fi

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
