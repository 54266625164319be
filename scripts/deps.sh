#!/bin/sh
# Installs the Debian packages tickgate needs to build and test, only those
# missing. Used by `make run`, `make test` and CI; safe to run repeatedly.
set -e
PKGS="build-essential pkg-config libuv1-dev libhttp-parser-dev libjansson-dev
libssl-dev libhiredis-dev libinih-dev zlib1g-dev libcmocka-dev"
if [ "$1" = "test" ]; then
  PKGS="$PKGS redis-server python3 python3-pytest python3-pytest-timeout
python3-websockets python3-jwt python3-cryptography python3-redis chromium chromium-driver
python3-selenium clang libclang-rt-14-dev valgrind"
fi
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "tickgate: installing Debian packages:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
