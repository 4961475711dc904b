#!/usr/bin/env bash
# Installs everything WARP's build and tests need on a fresh Debian (bookworm) machine.
# Idempotent: packages already present are skipped quickly.
set -euo pipefail

APT_PACKAGES=(
  build-essential pkg-config clang libclang-dev
  postgresql-15 redis-server
  kamailio kamailio-extra-modules kamailio-redis-modules kamailio-lua-modules
  kamailio-python3-modules kamailio-tls-modules
  kamailio-secsipid-modules kamailio-xml-modules
  rtpengine-daemon rtpengine-utils
  sip-tester
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Debian starts packaged daemons on install; the tests run their own instances on
# private ports, so stop the system ones to keep ports and CPU free.
for svc in kamailio rtpengine-daemon redis-server postgresql; do
  command -v systemctl >/dev/null 2>&1 && systemctl stop "$svc" >/dev/null 2>&1 || true
  command -v service >/dev/null 2>&1 && service "$svc" stop >/dev/null 2>&1 || true
done

# kamailio-sys generates bindings from Kamailio's own headers; Debian ships none, so unpack
# the source package of exactly the installed version (Debian patches applied) into
# $KAMAILIO_SRC_CACHE/<version>, where kamailio-sys's build script looks by default
# (KAMAILIO_SRC overrides it; see kamailio-module/README.md).
KAMAILIO_SRC_CACHE=/var/cache/warp/kamailio-src
ensure_kamailio_source() {
  local ver; ver=$(dpkg-query -W -f='${Version}' kamailio)
  [ -f "$KAMAILIO_SRC_CACHE/$ver/src/core/sr_module.h" ] && return
  local SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      $SUDO sed -i 's/^Types: deb$/Types: deb deb-src/' /etc/apt/sources.list.d/debian.sources
    else
      # One-line format: mirror every configured `deb` line as `deb-src`.
      sed -n 's/^deb /deb-src /p' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        $SUDO tee /etc/apt/sources.list.d/warp-src.list >/dev/null
    fi
    $SUDO apt-get update -qq
  fi
  $SUDO mkdir -p "$KAMAILIO_SRC_CACHE"
  local tmp; tmp=$($SUDO mktemp -d "$KAMAILIO_SRC_CACHE/.fetch.XXXX")
  $SUDO chmod 755 "$tmp" # apt downloads as the _apt user
  (cd "$tmp" && $SUDO apt-get source -qq --download-only "kamailio=$ver" &&
    $SUDO dpkg-source -x ./*.dsc tree >/dev/null)
  $SUDO rm -rf "${KAMAILIO_SRC_CACHE:?}/$ver"
  $SUDO mv "$tmp/tree" "$KAMAILIO_SRC_CACHE/$ver"
  $SUDO rm -rf "$tmp"
}
ensure_kamailio_source
