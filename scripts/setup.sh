#!/usr/bin/env bash
# Installs what the project needs from Debian 12's packages. Idempotent, quiet,
# and fast when everything is already there (no apt-get call at all then).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config clang-format clang-tidy curl zlib1g-dev
  clang libclang-rt-14-dev
  libcpp-httplib-dev libcurl4-openssl-dev libssl-dev nlohmann-json3-dev
  libcli11-dev libspdlog-dev doctest-dev libsystemd-dev libboost-dev
  chromium prometheus wrk
  dpkg-dev mmdebstrap systemd-container apt-utils gnupg jq ccache iproute2
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: all packages present"
