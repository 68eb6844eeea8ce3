#!/usr/bin/env bash
# Runs the MCP conformance suite's server scenarios against a running MCP endpoint (a Portico
# portal, or any upstream) and writes the results.
#
#   tests/conformance/run.sh URL [OUTPUT_DIR] [extra `conformance server` arguments...]
#
#   URL         the MCP endpoint, e.g. http://127.0.0.1:8080/portals/main/mcp
#   OUTPUT_DIR  where to write the results (default: a new temporary directory): one directory
#               per scenario with its checks.json, and summary.txt, the suite's printed report
#
# Environment:
#   PORTICO_NODE22, PORTICO_MCP_CONFORMANCE  Node 22 and the suite's bin (scripts/test exports
#                       both; or install tests/peers with `npm ci` and point them into it)
#   CF_ACCESS_CLIENT_ID, CF_ACCESS_CLIENT_SECRET  a service token for the portal. The suite
#                       cannot send headers, so when these are set the suite talks to
#                       header_proxy.py, which adds them, instead of to URL directly
#   PORTICO_PYTHON      the Python that runs header_proxy.py (needs tests/e2e/requirements.txt;
#                       default: python3)
#   CONFORMANCE_BASELINE  the expected-failures file (default: tests/conformance/baseline.yml);
#                       set it empty to report every failure as one
#
# Exits with the suite's status: 0 when every scenario passes or fails as the baseline expects.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [ $# -lt 1 ]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2
  exit 2
fi
url=$1
out=${2:-$(mktemp -d -t portico-conformance.XXXXXX)}
shift $(( $# >= 2 ? 2 : 1 ))
: "${PORTICO_NODE22:?PORTICO_NODE22 is not set (a Node 22 binary; scripts/test exports it)}"
: "${PORTICO_MCP_CONFORMANCE:?PORTICO_MCP_CONFORMANCE is not set (the conformance bin; scripts/test exports it)}"
baseline=${CONFORMANCE_BASELINE-$here/baseline.yml}
mkdir -p "$out"

target=$url
proxy_pid=
if [ -n "${CF_ACCESS_CLIENT_ID:-}" ]; then
  : "${CF_ACCESS_CLIENT_SECRET:?CF_ACCESS_CLIENT_SECRET is not set (CF_ACCESS_CLIENT_ID is)}"
  python=${PORTICO_PYTHON:-python3}
  port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  origin=$(printf '%s' "$url" | sed -E 's#^(https?://[^/]+).*#\1#')
  path=${url#"$origin"}
  "$python" "$here/header_proxy.py" "$port" "$origin" >"$out/header_proxy.log" 2>&1 &
  proxy_pid=$!
  trap 'kill "$proxy_pid" 2>/dev/null; wait "$proxy_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 200); do
    if "$python" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5)' "$port" 2>/dev/null; then
      break
    fi
    kill -0 "$proxy_pid" 2>/dev/null || { cat "$out/header_proxy.log" >&2; exit 1; }
    sleep 0.05
  done
  target="http://127.0.0.1:$port$path"
fi

args=(server --url "$target" --output-dir "$out")
[ -n "$baseline" ] && args+=(--expected-failures "$baseline")
echo "conformance: $url -> $out" >&2
status=0
"$PORTICO_NODE22" "$PORTICO_MCP_CONFORMANCE" "${args[@]}" "$@" >"$out/summary.txt" 2>&1 || status=$?
sed -n '/=== SUMMARY ===/,$p' "$out/summary.txt"
exit "$status"
