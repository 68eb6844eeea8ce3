#!/usr/bin/env bash
# Runs the MCP conformance suite's client authorization scenarios (`--suite auth`) against
# Portico's upstream OAuth client, driven by the example `upstream_oauth_client` (portico-gateway),
# and writes the results.
#
#   tests/conformance/client-auth.sh CLIENT_BINARY [OUTPUT_DIR]
#
#   CLIENT_BINARY  target/debug/examples/upstream_oauth_client
#                  (`cargo build -p portico-gateway --example upstream_oauth_client`)
#   OUTPUT_DIR     where to write the results (default: a new temporary directory): one
#                  directory per scenario with its checks.json and the client's stdout/stderr
#
# Environment: PORTICO_NODE22 and PORTICO_MCP_CONFORMANCE, as for run.sh.
#
# Each scenario starts an authorization server and an MCP server whose authorization endpoint
# approves at once; the client authorizes, lists the tools and calls one. The client is given
# the scenario suite's Client ID Metadata Document URL: authorization servers that support such
# documents get it as the client id, the others get Dynamic Client Registration (or the
# pre-registered client the pre-registration scenario provides).
#
# Exits with the suite's status (0 when every check passes or only warns), against
# client-auth-baseline.yml.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -lt 1 ]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2
  exit 2
fi
client=$1
out=${2:-$(mktemp -d -t portico-client-auth.XXXXXX)}
: "${PORTICO_NODE22:?PORTICO_NODE22 is not set (a Node 22 binary; scripts/test exports it)}"
: "${PORTICO_MCP_CONFORMANCE:?PORTICO_MCP_CONFORMANCE is not set (the conformance bin; scripts/test exports it)}"
mkdir -p "$out"
# The bin is a script for `node`; run it on Node 22 whatever `node` is on the PATH.
"$PORTICO_NODE22" "$(readlink -f "$PORTICO_MCP_CONFORMANCE")" client \
  --suite auth \
  --command "$client --client-metadata-url https://conformance-test.local/client-metadata.json" \
  --expected-failures "$here/client-auth-baseline.yml" \
  -o "$out" | tee "$out/summary.txt"
