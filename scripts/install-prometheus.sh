#!/usr/bin/env bash
# Installs what the Prometheus kit needs from Debian: `prometheus` (the server, for scripts/prometheus-check.sh) and
# `promtool` (both in the `prometheus` package, 2.42 on Debian 12), `python3` (the check's JSON and the dashboard
# picture, standard library only) and `librsvg2-bin` (`rsvg-convert`, which turns the picture's SVG into a PNG).
#
#   scripts/install-prometheus.sh
#
# Idempotent: asks `dpkg -s` which packages are installed first and runs `apt-get update` and `apt-get install` only
# when one is missing, so a machine that has them all is left alone (and no network is used). Needs root, or sudo
# when a package is missing.
#
# No Prometheus service is left running: the package's postinst would start one on :9090 (the gateway's default
# admin port). During the install a policy-rc.d that refuses service starts is put in place when the machine has
# none (and removed after); if a service was started anyway (systemd), it is stopped and disabled. The script ends
# by checking that nothing listens on port 9090.
set -euo pipefail

packages=(
  prometheus   # prometheus and promtool
  python3      # JSON handling in prometheus-check.sh, the dashboard picture
  librsvg2-bin # rsvg-convert: the dashboard picture's SVG to PNG
)

say() { printf 'install-prometheus: %s\n' "$*"; }

missing=()
for package in "${packages[@]}"; do
  # `dpkg -s` also succeeds for a package that was removed but left its config files: check its Status line.
  if ! dpkg -s "$package" 2>/dev/null | grep -qx 'Status: install ok installed'; then
    missing+=("$package")
  fi
done

sudo=()
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || {
    echo "install-prometheus: missing ${missing[*]}; run this script as root (or install sudo)" >&2
    exit 1
  }
  sudo=(sudo)
fi

if [ ${#missing[@]} -eq 0 ]; then
  say "all installed (${packages[*]})"
else
  say "installing ${missing[*]}"
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    # invoke-rc.d asks this file whether a package may start its service; 101 means "no".
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    own_policy=1
  fi
  status=0
  export DEBIAN_FRONTEND=noninteractive
  {
    "${sudo[@]}" apt-get update -qq &&
      "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
  } || status=$?
  [ "$own_policy" -eq 0 ] || "${sudo[@]}" rm -f "$policy"
  [ "$status" -eq 0 ] || exit "$status"
fi

# A service the package may have started after all (systemd ignores policy-rc.d).
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  if systemctl is-active --quiet prometheus 2>/dev/null || systemctl is-enabled --quiet prometheus 2>/dev/null; then
    say "stopping and disabling the prometheus service the package started"
    "${sudo[@]}" systemctl disable --now prometheus prometheus-node-exporter 2>/dev/null || true
  fi
elif [ -x /etc/init.d/prometheus ] && /etc/init.d/prometheus status >/dev/null 2>&1; then
  say "stopping the prometheus service the package started"
  "${sudo[@]}" /etc/init.d/prometheus stop >/dev/null || true
  command -v update-rc.d >/dev/null && { "${sudo[@]}" update-rc.d prometheus disable >/dev/null 2>&1 || true; }
fi

for tool in prometheus promtool rsvg-convert python3; do
  command -v "$tool" >/dev/null || { echo "install-prometheus: $tool is not on PATH" >&2; exit 1; }
done

# Port 9090 must be free: the gateway's admin listener defaults to it.
if command -v ss >/dev/null; then
  listeners=$(ss -Htln 'sport = :9090' 2>/dev/null || true)
else
  listeners=$(python3 -c 'import socket,sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", 9090))
except OSError:
    print("busy")' 2>/dev/null || true)
fi
if [ -n "$listeners" ]; then
  echo "install-prometheus: something still listens on port 9090:" >&2
  printf '%s\n' "$listeners" >&2
  exit 1
fi
say "$(prometheus --version 2>&1 | head -n 1); port 9090 is free"
