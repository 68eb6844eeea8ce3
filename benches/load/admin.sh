#!/usr/bin/env bash
# Admin API load: GET portal and PUT portal per second against a running `portico serve`
# (release build, embedded SQLite), measured with wrk from a second process on loopback.
#
#   benches/load/admin.sh [DURATION_SECONDS] [CONNECTIONS]
#
# Needs wrk (`apt-get install wrk`). Prints wrk's report for each of the two runs.
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-15}
connections=${2:-64}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }

cargo build --release -p portico --bin portico --locked >&2
bin=${CARGO_TARGET_DIR:-target}/release/portico
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=BenchToken0123456789abcdefghijklmnopqrst
account=0123456789abcdef0123456789abcdef
RUST_LOG=warn PORTICO_ADMIN_TOKEN=$token "$bin" --data-dir "$data" serve --listen "127.0.0.1:$port" --account-id $account >/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

api="http://127.0.0.1:$port/client/v4/accounts/$account/access/ai-controls/mcp"
auth="Authorization: Bearer $token"
for i in $(seq 1 10); do
  curl -sf -H "$auth" -X POST "$api/servers" -d "{\"id\":\"server-$i\",\"name\":\"Server $i\",\"hostname\":\"https://s$i.example.com/mcp\",\"auth_type\":\"unauthenticated\",\"updated_tools\":[{\"name\":\"search\",\"alias\":\"find$i\"}]}" >/dev/null
done
servers=$(python3 -c 'import json; print(json.dumps([{"server_id": f"server-{i}", "on_behalf": False, "updated_tools": [{"name": "search", "description": "Search"}]} for i in range(1, 11)]))')
# PUT keeps each portal's hostname (omitted fields other than name and hostname reset).
body="{\"name\":\"Bench\",\"servers\":$servers}"
for i in $(seq 0 63); do
  curl -sf -H "$auth" -X POST "$api/portals" -d "{\"id\":\"bench-$i\",\"hostname\":\"bench-$i.example.com\",${body:1}" >/dev/null
done

lua=$(mktemp)
cat >"$lua" <<LUA
-- Each of the two threads cycles over its own 32 of the 64 portals, so concurrent PUTs rarely
-- hit the same portal (those that do get 409, counted by wrk as non-2xx).
local threads = 0
function setup(thread)
  thread:set("offset", threads * 32)
  threads = threads + 1
end
local counter = 0
request = function()
  counter = counter + 1
  local path = "/client/v4/accounts/$account/access/ai-controls/mcp/portals/bench-" .. (offset + counter % 32)
  return wrk.format(METHOD, path, {["Authorization"] = "Bearer $token", ["Content-Type"] = "application/json"}, BODY)
end
LUA
get_lua=$(mktemp)
sed -e 's/METHOD/"GET"/' -e 's/BODY/nil/' "$lua" >"$get_lua"
sed -i -e 's/METHOD/"PUT"/' -e "s/BODY/[[$body]]/" "$lua"

echo "== GET portal (10 servers each), $connections connections, ${duration}s"
wrk -t2 -c"$connections" -d"${duration}s" --latency -s "$get_lua" "http://127.0.0.1:$port"
echo "== PUT portal (10 servers each), $connections connections, ${duration}s"
wrk -t2 -c"$connections" -d"${duration}s" --latency -s "$lua" "http://127.0.0.1:$port"
echo "== PUT portal, 1 connection, ${duration}s"
wrk -t1 -c1 -d"${duration}s" --latency -s "$lua" "http://127.0.0.1:$port"
rm -f "$lua" "$get_lua"
