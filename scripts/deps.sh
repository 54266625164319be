#!/bin/sh
# Installs the Debian packages tickgate needs to build and test, only those
# missing. Used by `make run`, `make test` and CI; safe to run repeatedly.
#   deps.sh         build
#   deps.sh run     build + the README tour's tools (make run)
#   deps.sh test    build + tests (CI)
#   deps.sh bench   build + `make bench`: valgrind, the openssl CLI, and Node.js with npm for
#                   the reference servers unless a node/npm is already there
set -e
PKGS="build-essential pkg-config libuv1-dev libhttp-parser-dev libjansson-dev
libssl-dev libhiredis-dev libinih-dev zlib1g-dev libdeflate-dev libcmocka-dev"
if [ "$1" = "run" ]; then
  # the README's tour: a WebSocket client, curl and openssl (a secret)
  PKGS="$PKGS python3 python3-websockets curl openssl"
fi
if [ "$1" = "test" ]; then
  PKGS="$PKGS redis-server python3 python3-pytest python3-pytest-timeout
python3-websockets python3-jwt python3-cryptography python3-redis chromium chromium-driver
python3-selenium clang libclang-rt-14-dev valgrind"
  # the JavaScript client's tests (node --test; npm ci of its dev dependencies)
  command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs"
  command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
fi
if [ "$1" = "bench" ]; then
  PKGS="$PKGS valgrind python3 openssl" # openssl: the TLS scenarios' certificate
  # Debian 12's nodejs (18) runs both reference servers (uWebSockets.js
  # ships its binary for Node 18's ABI); a node already installed is used.
  command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs"
  command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
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
