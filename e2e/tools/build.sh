#!/usr/bin/env bash
# Builds one of the real servers the end-to-end tests run, into a cache keyed by the exact
# versions pinned in its tools module, and prints the directory holding it. A warm cache costs
# nothing; a fresh machine builds each tool once (Istio ~6 min, kube-apiserver ~5 min on 2 cores).
#
#   e2e/tools/build.sh istio|kubernetes|etcd|polaris|helm|consul
#
# Each tool lives in its own module under e2e/tools/<tool> so that none of these large dependency
# graphs ever reaches the bridge's go.mod.
set -euo pipefail
tool=${1:?usage: build.sh istio|kubernetes|etcd|polaris|helm|consul}
here=$(cd "$(dirname "$0")" && pwd)
dir=$here/$tool
[ -f "$dir/go.mod" ] || { echo "build.sh: unknown tool '$tool' (no $dir/go.mod)" >&2; exit 2; }
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0

case $tool in
  istio)      mod=istio.io/istio;                 pkg=istio.io/istio/pilot/cmd/pilot-discovery; bin=pilot-discovery ;;
  kubernetes) mod=k8s.io/kubernetes;              pkg=k8s.io/kubernetes/cmd/kube-apiserver;     bin=kube-apiserver ;;
  etcd)       mod=go.etcd.io/etcd/server/v3;      pkg=.;                                        bin=etcd ;;
  polaris)    mod=github.com/polarismesh/polaris; pkg=github.com/polarismesh/polaris;           bin=polaris-server ;;
  helm)       mod=helm.sh/helm/v3;                pkg=helm.sh/helm/v3/cmd/helm;                 bin=helm ;;
  consul)     mod=github.com/hashicorp/consul;    pkg=github.com/hashicorp/consul;              bin=consul ;;
esac
version=$(cd "$dir" && go list -m -f '{{.Version}}' "$mod")
# The key also covers go.sum, so a changed transitive pin rebuilds too.
sum=$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-12)
cache=${MCP_BRIDGE_CACHE:-$HOME/.cache/mcp-bridge}/$tool-$version-$sum
if [ -x "$cache/$bin" ] && [ -f "$cache/.complete" ]; then echo "$cache"; exit 0; fi

# Test binaries of several packages run at once; only one of them builds, the others wait for it.
mkdir -p "$cache"
exec 9>"$cache.lock"
flock 9
if [ -x "$cache/$bin" ] && [ -f "$cache/.complete" ]; then echo "$cache"; exit 0; fi
start=$(date +%s)
ldflags="-s -w"
if [ "$tool" = kubernetes ]; then
  # Unstamped builds report v0.0.0-master+$Format:%H$, which kubectl warns about.
  ldflags="$ldflags -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"
fi
(cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$cache/$bin" "$pkg") >&2
moddir=$(cd "$dir" && go list -m -f '{{.Dir}}' "$mod")
case $tool in
  istio)   cp "$moddir/manifests/charts/base/files/crd-all.gen.yaml" "$cache/" ;;
  polaris) rm -rf "$cache/conf"; cp -r "$moddir/release/conf" "$cache/conf"; chmod -R u+w "$cache/conf" ;;
esac
touch "$cache/.complete"
echo "build.sh: built $tool $version in $(( $(date +%s) - start ))s" >&2
echo "$cache"
