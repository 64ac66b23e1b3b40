#!/usr/bin/env bash
# Prints the path of an HAProxy 3.4.0 binary (the current LTS), building it first when the cache
# has none: CI tests Debian's 2.6 and this one. These machines cannot download HAProxy, so the
# source comes from the `shared` folder beside the repository (shared/haproxy/README.md); the
# stripped binary is cached outside the checkout, keyed by the tarball's checksum, so a second
# run costs nothing.
#
#   bash .ci/haproxy-lts.sh      # → ~/.cache/kube-haproxy/haproxy-3.4.0/haproxy
#
# KUBE_HAPROXY_SHARED overrides where `shared` is; KUBE_HAPROXY_CACHE where the binary is kept.
set -euo pipefail

version=3.4.0
repo="$(cd "$(dirname "$0")/.." && pwd)"
shared="${KUBE_HAPROXY_SHARED:-$(dirname "$repo")/shared}"
tarball="$shared/haproxy/haproxy-$version-src.tar.gz"
cache="${KUBE_HAPROXY_CACHE:-$HOME/.cache/kube-haproxy}/haproxy-$version"
binary="$cache/haproxy"

fail() { echo "kube-haproxy CI: $*" >&2; exit 1; }

[ -f "$tarball" ] || fail "no HAProxy $version source at $tarball: CI expects the shared folder beside the repository ($(dirname "$repo")/shared), or set KUBE_HAPROXY_SHARED"
sum="$(sha256sum "$tarball" | cut -d' ' -f1)"
if [ -x "$binary" ] && [ "$(cat "$cache/source.sha256" 2>/dev/null)" = "$sum" ]; then
  echo "$binary"
  exit 0
fi

missing=()
for package in build-essential libssl-dev libpcre2-dev; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; } ||
    fail "cannot install ${missing[*]} with apt-get (run as root), needed to build HAProxy $version"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "kube-haproxy CI: building HAProxy $version from $tarball (about 2 minutes on 2 cores)" >&2
tar xzf "$tarball" -C "$work"
if ! make -C "$work/haproxy-$version" -j"$(nproc)" TARGET=linux-glibc USE_OPENSSL=1 USE_PCRE2=1 USE_PROMEX=1 >"$work/build.log" 2>&1; then
  tail -n 30 "$work/build.log" >&2
  fail "building HAProxy $version failed (the last lines of its log are above)"
fi
mkdir -p "$cache"
install -s -m 755 "$work/haproxy-$version/haproxy" "$binary"
echo "$sum" >"$cache/source.sha256"
"$binary" -v | head -n 1 >&2
echo "$binary"
