#!/bin/sh
# Debian's nginx source package, for the static build (make test-static).
#
#   nginx-source.sh check      true if apt knows nginx's source package
#   nginx-source.sh apt        (root) make `apt-get source nginx` work: a
#                              deb-src entry for each Debian deb entry of
#                              this release, then apt-get update
#   nginx-source.sh fetch DIR  download the source package of the installed
#                              nginx into DIR (once: DIR/nginx.dsc names it)
#
# The deb-src entries go to one file of their own,
# /etc/apt/sources.list.d/ngx-cost-cap-deb-src.{sources,list}, copied from
# the deb entries (deb822 *.sources and one-line sources.list / *.list) of
# the running release's suites (bookworm, bookworm-updates,
# bookworm-security on Debian 12): the same mirrors, components and keys.

set -eu

LISTS=/etc/apt/sources.list.d
OUT=ngx-cost-cap-deb-src

# the nginx source package of the installed nginx (its binary package's
# source version), e.g. 1.22.1-9+deb12u11
installed_version() {
    dpkg-query -W -f='${source:Version}' nginx-core 2>/dev/null \
        || dpkg-query -W -f='${source:Version}' nginx 2>/dev/null
}

has_sources() {
    apt-cache showsrc nginx 2>/dev/null | grep -q '^Package: nginx$'
}

codename() {
    . /etc/os-release
    echo "${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}"
}

# deb822 stanzas of type deb for the release's suites of a Debian archive
# (its URI names debian: a mirror, a proxy), as deb-src
deb822_src() {
    rel=$1
    shift
    awk -v rel="$rel" '
        function flush() {
            if (deb && suite && debian && !off) {
                printf "%s", (n++ ? "\n" : "")
                for (i = 1; i <= nl; i++) {
                    print (l[i] ~ /^Types:/ ? "Types: deb-src" : l[i])
                }
            }
            nl = 0; deb = 0; suite = 0; debian = 0; off = 0
        }
        /^[ \t]*$/ { flush(); next }
        {
            l[++nl] = $0
            if ($1 == "Types:") {
                for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1
            }
            if ($1 == "Suites:") {
                for (i = 2; i <= NF; i++)
                    if ($i == rel || index($i, rel "-") == 1) suite = 1
            }
            if ($1 == "URIs:" && $0 ~ /debian/) debian = 1
            if ($1 == "Enabled:" && $2 == "no") off = 1
        }
        END { flush() }
    ' "$@"
}

# one-line "deb [options] URI suite components" entries, the same ones,
# as deb-src
oneline_src() {
    rel=$1
    shift
    awk -v rel="$rel" '
        $1 == "deb" {
            s = 2
            if ($2 ~ /^\[/) { while (s <= NF && $s !~ /\]$/) s++; s++ }
            uri = $s
            suite = $(s + 1)
            rel_suite = suite == rel || index(suite, rel "-") == 1
            if (uri ~ /debian/ && rel_suite) {
                sub(/^deb/, "deb-src"); print
            }
        }
    ' "$@"
}

cmd_apt() {
    if has_sources; then
        return 0
    fi
    rel=$(codename)
    tmp=$(mktemp)
    set --
    for f in "$LISTS"/*.sources; do
        [ -f "$f" ] && [ "$f" != "$LISTS/$OUT.sources" ] && set -- "$@" "$f"
    done
    if [ $# -gt 0 ]; then
        deb822_src "$rel" "$@" >"$tmp"
        if [ -s "$tmp" ]; then
            mv "$tmp" "$LISTS/$OUT.sources"
            chmod 644 "$LISTS/$OUT.sources"
            echo "added $LISTS/$OUT.sources (deb-src of $rel)"
        fi
    fi
    set --
    for f in /etc/apt/sources.list "$LISTS"/*.list; do
        [ -f "$f" ] && [ "$f" != "$LISTS/$OUT.list" ] && set -- "$@" "$f"
    done
    if [ $# -gt 0 ]; then
        oneline_src "$rel" "$@" >"$tmp"
        if [ -s "$tmp" ]; then
            mv "$tmp" "$LISTS/$OUT.list"
            chmod 644 "$LISTS/$OUT.list"
            echo "added $LISTS/$OUT.list (deb-src of $rel)"
        fi
    fi
    rm -f "$tmp"
    apt-get update -qq
    if ! has_sources; then
        echo "$0: apt-cache showsrc nginx finds no source package:" >&2
        apt-cache showsrc nginx >&2 || true
        echo "$0: add a deb-src line for Debian $rel to /etc/apt/" >&2
        exit 1
    fi
}

# the source versions of nginx apt knows with the upstream version of $1,
# newest first, $1 itself first
candidates() {
    echo "$1"
    up=${1%-*}
    apt-cache showsrc nginx 2>/dev/null \
        | awk -v up="$up" '$1 == "Version:" && index($2, up "-") == 1 {
              print $2 }' \
        | sort -u -r -V | grep -v -x -F "$1" || true
}

cmd_fetch() {
    dir=$1
    if [ -f "$dir/nginx.dsc" ]; then
        return 0
    fi
    ver=$(installed_version)
    [ -n "$ver" ] || { echo "$0: nginx is not installed" >&2; exit 1; }
    mkdir -p "$dir"
    for v in $(candidates "$ver"); do
        # apt-get source downloads into the current directory
        if (cd "$dir" && apt-get source -qq --download-only "nginx=$v") \
            2>"$dir/apt-get.err"
        then
            dsc=nginx_${v#*:}.dsc
            ln -sf "$dsc" "$dir/nginx.dsc"
            grep -v '^W: Download is performed unsandboxed' \
                "$dir/apt-get.err" >&2 || true
            if [ "$v" != "$ver" ]; then
                echo "$0: NOTE: the static nginx is built from $v, not" \
                     "from $ver (the installed one), which the archive" \
                     "could not give" >&2
            fi
            rm -f "$dir/apt-get.err"
            echo "nginx source package: $dir/$dsc"
            return 0
        fi
        echo "$0: apt-get source --download-only nginx=$v failed:" >&2
        grep -v '^W: Download is performed unsandboxed' "$dir/apt-get.err" \
            >&2 || true
    done
    echo "$0: no source package of nginx ${ver%-*} could be downloaded" \
         "(make deps adds the deb-src entries)" >&2
    exit 1
}

case "${1:-}" in
    check) has_sources ;;
    apt)   cmd_apt ;;
    fetch) cmd_fetch "${2:?usage: $0 fetch DIR}" ;;
    *)     echo "usage: $0 check | apt | fetch DIR" >&2; exit 2 ;;
esac
