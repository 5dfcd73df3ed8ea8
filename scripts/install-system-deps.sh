#!/usr/bin/env bash
# Installs, from Debian packages, what the tests and demos need outside npm.
# Idempotent: installs only what is missing. Needs root (CI runs as root).
set -euo pipefail

# command → Debian package
declare -A NEEDED=(
  [mosquitto_pub]=mosquitto-clients
  [xmllint]=libxml2-utils
  [socat]=socat
)

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
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
