#!/usr/bin/env bash
# MCP data-plane load: `tools/call echo` straight to a local upstream and through a portal, side
# by side, at 1 and 64 connections, through the portal both with a service token and with a
# person's OAuth access token (obtained by signing in over HTTP: registration, PIN, consent); `tools/list` of a portal with 80 servers and 4,000 tools;
# portico's peak RSS with 1,000 open sessions; a CPU profile of the through-portal call path;
# Portico's CPU time and context switches per call through the portal; the event log's appends
# per commit and the share of appends committed by their appender (group commit, or an idle log
# committed in place); heap allocations per call through the portal (uprobes, when perf may add
# them); and a check that every call through the portal was audited.
#
#   benches/load/mcp.sh [DURATION_SECONDS] [SESSIONS_FOR_RSS]
#
# Everything runs on this machine: wrk, `portico serve` (release, embedded SQLite, fresh data
# directory, `--allow-private-upstreams`) and `mcp-upstream` (release, benches crate; rmcp
# stateless with JSON responses). The 80-server portal is 80 registrations of one upstream that
# lists 50 tools (`echo` + `--tools 49`), each under its own server id, each with its own pooled
# connection. Needs wrk and sqlite3 (`apt-get install -y wrk sqlite3`); perf (`linux-perf`) is
# used for the profile when present. Timing is printed, never asserted.
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-10}
rss_sessions=${2:-1000}
wrk_sessions=64
version=2025-11-25
for tool in wrk sqlite3 curl python3; do
  command -v $tool >/dev/null || { echo "$tool is missing: apt-get install -y $tool" >&2; exit 1; }
done

cargo build --release --locked -p portico --bin portico -p portico-benches --bin mcp-upstream >&2
target=${CARGO_TARGET_DIR:-target}/release
client="python3 benches/load/mcp_client.py"

# shellcheck source=benches/load/lib.sh
. benches/load/lib.sh

echo_port=$(free_port)
catalog_port=$(free_port)
"$target/mcp-upstream" --listen "127.0.0.1:$echo_port" >/dev/null &
pids+=($!)
"$target/mcp-upstream" --listen "127.0.0.1:$catalog_port" --tools 49 >/dev/null &
pids+=($!)
start_portico "$target/portico"
wait_http "http://127.0.0.1:$echo_port/mcp"
wait_http "http://127.0.0.1:$catalog_port/mcp"

# Servers: `bench` (echo upstream) and `cat-00` ... `cat-79` (the 50-tool upstream).
admin -X POST "$api/servers" -d "{\"id\":\"bench\",\"name\":\"Bench\",\"hostname\":\"http://127.0.0.1:$echo_port/mcp\",\"auth_type\":\"unauthenticated\"}" >/dev/null
catalog_ids=$(seq -f 'cat-%02g' 0 79)
for id in $catalog_ids; do
  admin -X POST "$api/servers" -d "{\"id\":\"$id\",\"name\":\"Catalog $id\",\"hostname\":\"http://127.0.0.1:$catalog_port/mcp\",\"auth_type\":\"unauthenticated\"}" >/dev/null
done
admin -X POST "$api/portals" -d '{"id":"calls","name":"Calls","hostname":"calls.example.com","servers":[{"server_id":"bench","on_behalf":false}]}' >/dev/null
servers=$(for id in $catalog_ids; do printf '{"server_id":"%s","on_behalf":false},' "$id"; done)
admin -X POST "$api/portals" -d "{\"id\":\"catalog\",\"name\":\"Catalog\",\"hostname\":\"catalog.example.com\",\"servers\":[${servers%,}]}" >/dev/null
service_token bench
for id in bench $catalog_ids; do
  wait_ready "$id"
done
echo "== set-up: 81 servers ready, portals calls (1 server) and catalog (80 servers x 50 tools)"

direct="http://127.0.0.1:$echo_port/mcp"
portal="http://127.0.0.1:$port/portals/calls/mcp"
catalog="http://127.0.0.1:$port/portals/catalog/mcp"
cred=(--header "CF-Access-Client-Id: $client_id" --header "CF-Access-Client-Secret: $client_secret")
mem() { grep -E "^$1:" "/proc/$portico/status" | awk '{print $2}'; }
events() { sqlite3 "$data/portico.db" "SELECT count(*) FROM events WHERE event_type = 'PortalRequestHandled'"; }

# --- Memory: 1,000 sessions (before any load, so that VmHWM is theirs) -----------------------
rss_before=$(mem VmRSS)
$client sessions "$portal" "$rss_sessions" "${cred[@]}" >"$work/rss-sessions"
sleep 1
rss_after=$(mem VmRSS)
hwm_after=$(mem VmHWM)
echo "== memory: VmRSS $rss_before kB before, $rss_after kB with $(grep -c . "$work/rss-sessions") open sessions; VmHWM $hwm_after kB"

# --- tools/call -------------------------------------------------------------------------------
$client sessions "$portal" $wrk_sessions "${cred[@]}" >"$work/portal-sessions"
: >"$work/no-sessions"
direct_lua=$(make_lua direct echo "$work/no-sessions")
portal_lua=$(make_lua portal bench_echo "$work/portal-sessions" ", [\"CF-Access-Client-Id\"] = \"$client_id\", [\"CF-Access-Client-Secret\"] = \"$client_secret\"")

declare -A result
declare -A cost
declare -A batching
# Portico's CPU time (clock ticks) and context switches (all threads) so far.
portico_ticks() { awk '{print $14 + $15}' "/proc/$portico/stat"; }
portico_switches() { cat /proc/"$portico"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }
# The event log's appends, commits and commits run by an appender itself, so far (/metrics).
log_commits() {
  curl -sSf "http://127.0.0.1:$port/metrics" | awk '
    /^portico_log_commit_appends_sum\{backend="sqlite"\}/ { appends = $2 }
    /^portico_log_commit_appends_count\{backend="sqlite"\}/ { commits = $2 }
    /^portico_log_commits_total\{backend="sqlite",thread="appender"\}/ { in_place = $2 }
    END { printf "%d %d %d", appends, commits, in_place }'
}
run() { # label connections lua url
  local threads=$(( $2 < 2 ? 1 : 2 ))
  echo "== $1: tools/call echo, $2 connection(s), ${duration}s" >&2
  local ticks switches commits; ticks=$(portico_ticks); switches=$(portico_switches); commits=$(log_commits)
  wrk -t$threads -c"$2" -d"${duration}s" --latency -s "$3" "$4" >"$work/$1.out"
  sed -n '/Thread Stats/,/Requests\/sec/p' "$work/$1.out" | grep -v '^ *[0-9.]*%' >&2 || true
  result[$1]=$(grep '^RESULT' "$work/$1.out" | cut -d' ' -f2-)
  # Portico's CPU per call (ms) and context switches per call, over the run.
  cost[$1]=$(awk -v t=$(( $(portico_ticks) - ticks )) -v s=$(( $(portico_switches) - switches )) \
    -v hz="$(getconf CLK_TCK)" -v n="${result[$1]%% *}" 'BEGIN { printf "%.3f %.1f", t * 1000 / hz / n, s / n }')
  # The log's appends per commit, and the share of appends committed by their appender.
  local a0 c0 i0 a1 c1 i1
  read -r a0 c0 i0 <<<"$commits"
  read -r a1 c1 i1 <<<"$(log_commits)"
  batching[$1]=$(awk -v a=$((a1 - a0)) -v c=$((c1 - c0)) -v i=$((i1 - i0)) \
    'BEGIN { if (c > 0) printf "%.2f %.0f%%", a / c, i * 100 / a; else print "- -" }')
}
audit_check() { # label events-before
  sleep 1
  local after; after=$(events)
  read -r requests _ _ _ sent errors socket <<<"${result[$1]}"
  echo "   audit $1: $((after - $2)) PortalRequestHandled events; wrk: $requests answered ($errors of them errors), $socket socket errors, $sent sent" >&2
  audited[$1]="$((after - $2)) $requests $errors $sent"
}
declare -A audited
run direct-c1 1 "$direct_lua" "$direct"
before=$(events); run portal-c1 1 "$portal_lua" "$portal"; audit_check portal-c1 "$before"
run direct-c64 64 "$direct_lua" "$direct"
before=$(events)
profile=""
if command -v perf >/dev/null; then
  perf record -F 999 -g -o "$work/perf.data" -p "$portico" -- sleep "$duration" >/dev/null 2>&1 &
  profile=$!
fi
run portal-c64 64 "$portal_lua" "$portal"
[ -n "$profile" ] && wait "$profile" || true
audit_check portal-c64 "$before"

# --- The same calls as a person (an OAuth access token) ------------------------------------------
# Signs in over HTTP as a browser would: register a client, the authorization request with PKCE,
# the sign-in form, the PIN from portico's log (no SMTP server here), consent, the token request.
admin -X POST "$base/cedar/policies" -d '{"name":"bench people","policy":"permit(principal is Portico::User, action, resource);"}' >/dev/null
site="http://127.0.0.1:$port/portals/calls"
redirect="http://127.0.0.1:9/callback"
jar=$work/cookies
urlenc() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
field() { python3 -c 'import html, re, sys; print(html.unescape(re.search(r"name=\"%s\" value=\"([^\"]*)\"" % sys.argv[1], sys.stdin.read()).group(1)))' "$1"; }
oauth_client=$(curl -sSf -X POST "$site/oauth/register" -H 'Content-Type: application/json' \
  -d "{\"client_name\":\"bench\",\"redirect_uris\":[\"$redirect\"]}" | json 'd["client_id"]')
verifier=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
challenge=$(python3 -c 'import base64, hashlib, sys; print(base64.urlsafe_b64encode(hashlib.sha256(sys.argv[1].encode()).digest()).rstrip(b"=").decode())' "$verifier")
authorize="$site/oauth/authorize?response_type=code&client_id=$oauth_client&redirect_uri=$(urlenc "$redirect")&code_challenge=$challenge&code_challenge_method=S256&state=bench&resource=$(urlenc "$site/mcp")"
page=$(curl -sSf -c "$jar" -b "$jar" "$authorize")
csrf=$(field csrf <<<"$page")
next=$(field next <<<"$page")
page=$(curl -sSf -c "$jar" -b "$jar" --data-urlencode "csrf=$csrf" --data-urlencode "next=$next" --data-urlencode "email=bench@example.com" "$site/login")
pin_challenge=$(field challenge <<<"$page")
sleep 0.2
pin=$(grep -o 'to=bench@example.com.*code=[0-9]*' "$work/portico.log" | tail -1 | grep -o '[0-9]*$')
after_pin=$(curl -sS -o /dev/null -w '%{redirect_url}' -c "$jar" -b "$jar" --data-urlencode "csrf=$csrf" \
  --data-urlencode "next=$next" --data-urlencode "challenge=$pin_challenge" \
  --data-urlencode "email=bench@example.com" --data-urlencode "code=$pin" "$site/login/pin")
page=$(curl -sSf -c "$jar" -b "$jar" "$after_pin")
consent=(--data-urlencode "csrf=$csrf" --data-urlencode "decision=allow")
for name in response_type client_id redirect_uri code_challenge code_challenge_method resource state; do
  consent+=(--data-urlencode "$name=$(field "$name" <<<"$page")")
done
back=$(curl -sS -o /dev/null -w '%{redirect_url}' -c "$jar" -b "$jar" "${consent[@]}" "$site/consent")
code=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.parse_qs(urllib.parse.urlparse(sys.argv[1]).query)["code"][0])' "$back")
user_token=$(curl -sSf "$site/oauth/token" --data-urlencode grant_type=authorization_code --data-urlencode "code=$code" \
  --data-urlencode "redirect_uri=$redirect" --data-urlencode "client_id=$oauth_client" --data-urlencode "code_verifier=$verifier" \
  | json 'd["access_token"]')
$client sessions "$portal" $wrk_sessions --header "Authorization: Bearer $user_token" >"$work/user-sessions"
user_lua=$(make_lua user bench_echo "$work/user-sessions" ", [\"Authorization\"] = \"Bearer $user_token\"")
before=$(events); run user-c1 1 "$user_lua" "$portal"; audit_check user-c1 "$before"
before=$(events); run user-c64 64 "$user_lua" "$portal"; audit_check user-c64 "$before"

# --- tools/list ---------------------------------------------------------------------------------
list_session=$($client sessions "$catalog" 1 "${cred[@]}")
list=$($client list "$catalog" "$list_session" 200 "${cred[@]}")
echo "== tools/list, portal with 80 servers: $list" >&2
{
  echo "local body = '{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\",\"params\":{}}'"
  echo "local headers = {[\"Content-Type\"] = \"application/json\", [\"Accept\"] = \"application/json, text/event-stream\", [\"MCP-Protocol-Version\"] = \"$version\", [\"Mcp-Session-Id\"] = \"$list_session\", [\"CF-Access-Client-Id\"] = \"$client_id\", [\"CF-Access-Client-Secret\"] = \"$client_secret\"}"
  echo 'function request() return wrk.format("POST", wrk.path, headers, body) end'
  echo 'function done(summary, latency, requests) io.write(string.format("RESULT %d %.0f %d %d\n", summary.requests, summary.requests / summary.duration * 1e6, latency:percentile(50), latency:percentile(99))) end'
} >"$work/list.lua"
wrk -t1 -c1 -d"${duration}s" --latency -s "$work/list.lua" "$catalog" >"$work/list.out"
read -r _ list_rps list_p50 list_p99 <<<"$(grep '^RESULT' "$work/list.out" | cut -d' ' -f2-)"

# --- Allocations per call -----------------------------------------------------------------------
# Counted by uprobes on mimalloc's entry points (every heap allocation of Rust code in portico
# goes through one of them), in a run of its own: each probe hit traps into the kernel and slows
# the calls it counts. Needs perf and the right to add probes (root); skipped otherwise.
allocations="not measured (needs perf and the right to add uprobes)"
remove_probes() { perf probe -q -d 'probe_portico:mi_*' >/dev/null 2>&1 || true; }
if command -v perf >/dev/null && remove_probes \
  && perf probe -q -x "$target/portico" -a mi_malloc_aligned -a mi_zalloc_aligned -a mi_realloc_aligned >/dev/null 2>&1; then
  trap 'remove_probes; cleanup' EXIT
  perf stat -x, -e 'probe_portico:mi_*' -o "$work/allocations" -p "$portico" -- sleep 3 &
  counting=$!
  wrk -t1 -c1 -d3s -s "$portal_lua" "$portal" >"$work/allocations.out"
  wait "$counting" || true
  remove_probes
  calls=$(grep '^RESULT' "$work/allocations.out" | cut -d' ' -f2)
  allocations=$(awk -F, -v n="$calls" '$3 ~ /^probe_portico:mi_/ { sum += $1; each = each sprintf(" %s %.1f,", substr($3, 15), $1 / n) }
    END { if (n > 0) printf "%.0f per call over %d calls (%s)", sum / n, n, substr(each, 2, length(each) - 2) }' "$work/allocations")
fi

# --- Summary ------------------------------------------------------------------------------------
ms() { awk -v us="$1" 'BEGIN { printf "%.3f", us / 1000 }'; }
echo
echo "tools/call echo, ${duration}s per run (2 cores shared by wrk, portico and the upstream)"
printf '%-8s %-12s %10s %10s %10s %8s %12s %12s %16s %9s\n' target connections req/s p50_ms p99_ms errors portico_cpu_ms switches appends/commit in_place
for c in 1 64; do
  for t in direct portal user; do
    read -r _ rps p50 p99 _ errors socket <<<"${result[$t-c$c]}"
    read -r cpu switches <<<"${cost[$t-c$c]}"
    read -r per_commit in_place <<<"${batching[$t-c$c]}"
    [ "$t" = direct ] && cpu="" && switches="" && per_commit="" && in_place=""
    printf '%-8s %-12s %10s %10s %10s %8s %12s %12s %16s %9s\n' $t $c "$rps" "$(ms "$p50")" "$(ms "$p99")" $((errors + socket)) "$cpu" "$switches" "$per_commit" "$in_place"
  done
  read -r _ _ dp50 dp99 _ <<<"${result[direct-c$c]}"
  read -r _ _ pp50 pp99 _ <<<"${result[portal-c$c]}"
  read -r _ _ up50 up99 _ <<<"${result[user-c$c]}"
  echo "   portal adds at c=$c: p50 +$(ms $((pp50 - dp50))) ms, p99 +$(ms $((pp99 - dp99))) ms (service token); p50 +$(ms $((up50 - dp50))) ms, p99 +$(ms $((up99 - dp99))) ms (a person's token)"
done
echo "tools/list (first page of 500 of 4,002 tools), 1 connection: $list_rps req/s, p50 $(ms "$list_p50") ms, p99 $(ms "$list_p99") ms"
echo "tools/list (every page, sequential walks): $list"
echo "allocations, portal c=1 (service token): $allocations"
echo "portico memory with $rss_sessions sessions: VmRSS $rss_after kB (was $rss_before kB), VmHWM $hwm_after kB"
for run in portal-c1 portal-c64 user-c1 user-c64; do
  read -r got requests errors sent <<<"${audited[$run]}"
  echo "audit $run: $got PortalRequestHandled events for $requests answered requests ($errors errors) and $sent sent"
done
if [ -f "$work/perf.data" ]; then
  set +o pipefail # `head` closes the pipes early
  echo
  echo "profile of portico during portal-c64 (perf, 999 Hz; self time by binary, thread, symbol):"
  report() { perf report -i "$work/perf.data" --no-children --stdio -g none "$@" 2>/dev/null | grep -E '^ +[0-9]' | sed 's/ *$//'; }
  report --sort dso | head -5
  report --sort comm | head -5
  report --sort symbol | head -25 | cut -c1-110 | sed 's/ *$//'
  echo "by kind (self time):"
  report --sort symbol | awk '{
      p = $1 + 0; sym = $0
      if (sym ~ /\[k\]/) k = "kernel (TCP, scheduling, syscalls)"
      else if (sym ~ /mi_|malloc|free|memmove|memcpy|memset/) k = "allocation and copying"
      else if (sym ~ /sqlite|wal/) k = "SQLite (audit log)"
      else if (sym ~ /serde|json/) k = "JSON (serde)"
      else if (sym ~ /tokio|futures|waker|notify|mpsc|cancellation/) k = "async runtime, channels"
      else if (sym ~ /cedar|regex/) k = "Cedar, regex"
      else if (sym ~ /hyper|reqwest|h1|actix|http/) k = "HTTP (actix-web, hyper)"
      else k = "other"
      sum[k] += p }
    END { for (k in sum) printf "  %6.2f%%  %s\n", sum[k], k }' | sort -rn
  cp "$work/perf.data" "${PORTICO_PERF_DATA:-/tmp/portico-mcp-perf.data}" 2>/dev/null || true
fi
