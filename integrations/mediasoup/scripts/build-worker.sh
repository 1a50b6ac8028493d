#!/bin/bash
# Build the mediasoup worker once into a cache folder outside the repository, keyed by version, and print its path.
#
# mediasoup's npm package builds its C++ worker at install time with meson wraps that download sources, which
# fails offline; 3.12.16 builds against Debian bookworm's own libraries once each meson `subproject()` is replaced
# by a system `dependency()` (patch_worker_meson.py, from the recipe in the team's mediasoup reference notes).
# About 8 minutes on 2 cores, once per machine; later calls print the cached path at once.
#
#   CALLVAULT_MEDIASOUP_CACHE   cache folder (default ${XDG_CACHE_HOME:-~/.cache}/callvault/mediasoup-worker-<version>)
#   MEDIASOUP_VERSION           worker version (default 3.12.16: the newest that builds from Debian's libraries)
#
# Output: <cache>/mediasoup-worker (the binary). Install the npm package against it with
#   MEDIASOUP_WORKER_BIN=<cache>/mediasoup-worker npm install
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
version=${MEDIASOUP_VERSION:-3.12.16}
cache=${CALLVAULT_MEDIASOUP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/callvault/mediasoup-worker-$version}
bin="$cache/mediasoup-worker"
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9 # one build at a time; a second caller waits and then finds the binary
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

debs="g++ pkg-config ninja-build python3-venv libssl-dev libuv1-dev libsrtp2-dev libusrsctp-dev libabsl-dev nlohmann-json3-dev"
missing=""
for p in $debs; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"; done
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ]; then echo "build-worker.sh: missing Debian packages:$missing (run as root or install them)" >&2; exit 1; fi
  echo "build-worker.sh: installing Debian packages:$missing" >&2
  apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

work="$cache/work"
mkdir -p "$work" && cd "$work"
[ -x venv-meson/bin/meson ] || { python3 -m venv venv-meson && venv-meson/bin/pip install -q meson==1.2.1; }
[ -f "mediasoup-$version.tgz" ] || npm pack -q "mediasoup@$version" >/dev/null
rm -rf src build && mkdir src && tar xzf "mediasoup-$version.tgz" -C src
(cd src/package/worker && python3 "$here/patch_worker_meson.py")
echo "build-worker.sh: building mediasoup-worker $version into $cache (about 8 minutes on 2 cores)" >&2
venv-meson/bin/meson setup --wrap-mode=nodownload --buildtype=release -Db_ndebug=true build src/package/worker >/dev/null
nice ninja -C build -j"${BUILD_JOBS:-2}" mediasoup-worker >/dev/null
install -m 0755 build/mediasoup-worker "$bin.tmp" && mv "$bin.tmp" "$bin"
cd "$cache" && rm -rf "$work"
echo "$bin"
