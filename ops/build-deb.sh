#!/bin/sh
# `make deb`: libnginx-mod-http-cost-cap, built by dpkg-buildpackage with
# dh-sequence-nginx against Debian's nginx-dev, into OUT (default
# build/deb).  What is built is the files git knows (tracked, and new ones
# not ignored), or outside a git work tree every file but build/: never a
# leftover of an earlier build.
#
# NGINX's auto/make mangles a build directory whose path contains ".S"
# (mktemp's tmp.S4xB8G, say), and dh-sequence-nginx builds below the
# source tree: the sources are copied to build/deb-src, or, when the
# repository's own path contains ".S", to a directory of mktemp's under
# /tmp, which cannot.
set -eu
cd "$(dirname "$0")/.."
root=$(pwd -P)
out=${1:-build/deb}
pkg=libnginx-mod-http-cost-cap

sudo=
[ "$(id -u)" = 0 ] || sudo=sudo

apt_install() {
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        --no-install-recommends "$@"
}

# dpkg-buildpackage itself, then the Build-Depends of debian/control
command -v dpkg-buildpackage >/dev/null 2>&1 || apt_install dpkg-dev
if ! dpkg-checkbuilddeps >/dev/null 2>&1; then
    echo "installing the build dependencies of debian/control"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get build-dep -y -qq \
        --no-install-recommends ./
fi
dpkg-checkbuilddeps

version=$(dpkg-parsechangelog -S Version)

case "$root" in
    *.S*)
        stage=$(mktemp -d /tmp/cost-cap-deb-XXXXXX)
        trap 'rm -rf "$stage"' EXIT
        ;;
    *)
        stage=$root/build/deb-src
        rm -rf "$stage"
        ;;
esac

src=$stage/$pkg-$version
mkdir -p "$src"

if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # deleted but not yet committed files are listed too: skip them
    git ls-files -z --cached --others --exclude-standard \
        | tar --null -T - --ignore-failed-read -cf - 2>/dev/null \
        | tar -C "$src" -xf -
else
    tar --exclude=./build --exclude=./.git -cf - . | tar -C "$src" -xf -
fi

echo "building $pkg $version in $src"
mkdir -p "$out"
out=$(cd "$out" && pwd -P)
rm -f "$out"/*.deb
log=$out/build.log
if ! (cd "$src" && DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-parallel=2}" \
        dpkg-buildpackage -b -us -uc) >"$log" 2>&1
then
    tail -40 "$log"
    echo "dpkg-buildpackage failed: $log" >&2
    exit 1
fi

cp "$stage"/*.deb "$out"/
ls -l "$out"/*.deb
