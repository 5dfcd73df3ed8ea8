#!/usr/bin/env bash
# Installs, from Debian packages, what the tests and demos need outside npm.
# Idempotent: installs only what is missing. Needs root (CI runs as root).
set -euo pipefail

# command → Debian package
declare -A NEEDED=(
  [mosquitto_pub]=mosquitto-clients
  [xmllint]=libxml2-utils
  [socat]=socat
  [influxd]=influxdb
  [chromium]=chromium
  [mosquitto]=mosquitto
  [cc]=gcc
)

# The mosquitto broker lives in /usr/sbin, which a non-root PATH may lack.
PATH="$PATH:/usr/sbin:/sbin"

# The influxdb package would start a system influxd on 8086 and the mosquitto
# package a system broker on 1883; the gateway, the tests and the benchmarks run
# their own on free ports, so stop any daemon that an install started.
stop_packaged_daemon() {
  local service_name=$1
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service_name" 2>/dev/null; then
    systemctl disable --now "$service_name" >/dev/null 2>&1 || true
  fi
  if command -v service >/dev/null 2>&1; then service "$service_name" stop >/dev/null 2>&1 || true; fi
}

missing=()
for cmd in "${!NEEDED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEEDED[$cmd]}")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system deps: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system deps missing: ${missing[*]} — run this script as root (apt-get)" >&2
  exit 1
fi
echo "system deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# policy-rc.d exit 101 = "action forbidden": packages install without starting their daemons.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  own_policy=1
fi
trap 'if [ "$own_policy" -eq 1 ]; then rm -f "$policy"; fi' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
stop_packaged_daemon influxdb
stop_packaged_daemon mosquitto
