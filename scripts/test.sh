#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: installs what is missing, builds the real
# servers the tests run against (cached by version under ~/.cache/mcp-bridge, so only the first
# run pays ~30 minutes on 2 cores), runs gofmt, go vet and staticcheck, every test, then every
# fuzz target for a few seconds.
#
#   ./scripts/test.sh            # everything
#   ./scripts/test.sh ./mcp/...  # only these packages (checks still run on the whole tree)
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
cache=${MCP_BRIDGE_CACHE:-$HOME/.cache/mcp-bridge}
mkdir -p "$cache"
step() { printf '\n== %s (%ds)\n' "$*" "$SECONDS"; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

step "system packages"
# ZooKeeper 3.8 from Debian for the ZooKeeper registry tests, and Chromium (headless) for the
# status page test; Java 17 and kubectl come with the image.
missing=()
[ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
command -v chromium >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for tool in java kubectl; do
  command -v "$tool" >/dev/null || { echo "test.sh: $tool is required and missing" >&2; exit 1; }
done

step "staticcheck"
staticcheck_version=v0.7.0
staticcheck=$cache/staticcheck-$staticcheck_version/staticcheck
if [ ! -x "$staticcheck" ]; then
  GOBIN=$(dirname "$staticcheck") go install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version"
fi

step "real servers (built once per version)"
for tool in etcd polaris helm consul kubernetes istio; do
  bash e2e/tools/build.sh "$tool"
done

step "gofmt"
unformatted=$(gofmt -l $(git ls-files --cached --others --exclude-standard '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:" >&2; echo "$unformatted" >&2; exit 1
fi

step "go vet"
go vet ./...

step "staticcheck"
"$staticcheck" ./...

step "go test"
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)
go test -count=1 -timeout 40m "${pkgs[@]}"

step "fuzz (${MCP_BRIDGE_FUZZTIME:=3s} per target)"
# Every 'func FuzzXxx(f *testing.F)' of the packages tested above runs for a few seconds beyond
# its committed seeds (which 'go test' already ran). New targets are found without editing this
# script. A failure leaves the failing input in the package's testdata/fuzz/FuzzXxx/: commit it
# with the fix, as a regression seed. MCP_BRIDGE_FUZZTIME=0 skips this step.
if [ "$MCP_BRIDGE_FUZZTIME" != 0 ]; then
  while read -r pkg dir; do
    for name in $(grep -hoE '^func Fuzz[A-Za-z0-9_]*\([A-Za-z0-9_]+ \*testing\.F\)' "$dir"/*_test.go 2>/dev/null | sed 's/^func //; s/(.*//' | sort -u); do
      echo "$pkg $name"
      go test -run '^$' -fuzz "^$name\$" -fuzztime "$MCP_BRIDGE_FUZZTIME" "$pkg" >"$cache/fuzz.log" 2>&1 ||
        { cat "$cache/fuzz.log" >&2; echo "test.sh: $pkg $name failed; the input is in $dir/testdata/fuzz/$name/" >&2; exit 1; }
    done
  done < <(go list -f '{{.ImportPath}} {{.Dir}}' "${pkgs[@]}")
fi
step "done"
