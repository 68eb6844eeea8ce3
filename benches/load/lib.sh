# Shared by the load scripts (sourced, not run): a work directory that is removed on exit with
# every process started into `pids`, free ports, waiting for an HTTP endpoint, reading a JSON
# field, and a Portico on a fresh data directory with its admin API helpers.

work=$(mktemp -d)
data=$work/data
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "$1 did not come up" >&2; exit 1; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

token=BenchToken0123456789abcdefghijklmnopqrst
account=0123456789abcdef0123456789abcdef

# start_portico BINARY [SERVE ARGS...]: `portico serve` on a free port over $data (embedded
# SQLite, upstreams on loopback allowed), once it answers; sets `port`, `portico` (its pid),
# `base` and `api`.
start_portico() {
  port=$(free_port)
  RUST_LOG=${RUST_LOG:-warn} PORTICO_ADMIN_TOKEN=$token "$1" --data-dir "$data" serve \
    --listen "127.0.0.1:$port" --account-id $account --allow-private-upstreams "${@:2}" >"$work/portico.log" 2>&1 &
  portico=$!
  pids+=($portico)
  wait_http "http://127.0.0.1:$port/healthz"
  base="http://127.0.0.1:$port/client/v4/accounts/$account"
  api="$base/access/ai-controls/mcp"
}

admin() { curl -sSf -H "Authorization: Bearer $token" -H 'Content-Type: application/json' "$@"; }

# service_token NAME: a service token a policy lets do everything; sets `token_id`, `client_id`
# and `client_secret`.
service_token() {
  local created
  created=$(admin -X POST "$base/access/service_tokens" -d "{\"name\":\"$1\"}")
  token_id=$(json 'd["result"]["id"]' <<<"$created")
  client_id=$(json 'd["result"]["client_id"]' <<<"$created")
  client_secret=$(json 'd["result"]["client_secret"]' <<<"$created")
  admin -X POST "$base/cedar/policies" -d "{\"name\":\"$1\",\"policy\":\"permit(principal == Portico::ServiceToken::\\\"$token_id\\\", action, resource);\"}" >/dev/null
}

# wait_ready ID: waits for server ID's first sync; stops the script unless it is `ready`.
wait_ready() {
  local status
  for _ in $(seq 300); do
    status=$(admin "$api/servers/$1" | json 'd["result"]["status"]')
    [ "$status" = waiting ] || break
    sleep 0.1
  done
  [ "$status" = ready ] || { echo "server $1 is $status, not ready" >&2; tail -20 "$work/portico.log" >&2; exit 1; }
}

# One Lua script per target: rotates over the target's sessions (none for the stateless
# upstream), a unique JSON-RPC id per request, counts what it sent and any answer that is not a
# 200 with a JSON-RPC result; prints one RESULT line for the summary.
# `$version` is the MCP protocol version the requests carry (2025-11-25 unless set).
make_lua() { # target-name tool-name session-file [extra header lines]
  local file=$work/$1.lua
  {
    echo "local sessions = {"
    grep . "$3" | sed 's/.*/  "&",/' || true
    echo "}"
    cat <<LUA
local tool = "$2"
local headers = {["Content-Type"] = "application/json", ["Accept"] = "application/json, text/event-stream", ["MCP-Protocol-Version"] = "${version:-2025-11-25}"${4:-}}
local path = wrk.path
local threads = {}
local next_thread = 0
function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end
sent = 0
errors = 0
function request()
  sent = sent + 1
  if #sessions > 0 then headers["Mcp-Session-Id"] = sessions[(sent + thread_id * 7) % #sessions + 1] end
  local body = string.format('{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"%s","arguments":{"text":"hello"}}}', thread_id * 1000000000 + sent, tool)
  return wrk.format("POST", path, headers, body)
end
function response(status, hdrs, body)
  if status ~= 200 or not body:find('"result"', 1, true) then
    errors = errors + 1
    if errors <= 3 then io.stderr:write("bad answer: " .. status .. " " .. body:sub(1, 300) .. "\n") end
  end
end
function done(summary, latency, requests)
  local s, e = 0, 0
  for _, t in ipairs(threads) do s = s + t:get("sent"); e = e + t:get("errors") end
  local x = summary.errors
  io.write(string.format("RESULT %d %.0f %d %d %d %d %d\n", summary.requests,
    summary.requests / summary.duration * 1e6, latency:percentile(50), latency:percentile(99),
    s, e, x.connect + x.read + x.write + x.status + x.timeout))
end
LUA
  } >"$file"
  echo "$file"
}
