#!/usr/bin/env bash
# Logpush under load: what an enabled job costs the request path, and how long a call takes to
# reach the bucket.
#
#   benches/load/logpush.sh [SECONDS_PER_RUN] [LAG_SECONDS] [CALLS_PER_SECOND] [ROUNDS]
#
# Everything runs on this machine: `portico serve` (release, embedded SQLite, fresh data
# directory), the fast upstream `mcp-upstream` (release, benches crate) and moto's S3 server
# (`moto_server`, from the end-to-end suite's virtual environment, made here as scripts/test
# makes it when it is missing). The job pushes `mcp_portal_logs` as Parquet to moto with
# `max_upload_interval_seconds=30` (the product's default).
#
# 1. Throughput: wrk, 64 connections, `tools/call echo` through a portal for SECONDS_PER_RUN
#    (default 40, so that a run with the job includes one 30-second batch's upload), alternating
#    runs without a job and with one (A B B A A B ..., ROUNDS rounds, default 2), the call log
#    settled before each run. Prints req/s, p50/p99 and CPU per call of each run, and the
#    changes of the averages.
# 2. Lag: wrk paced to about CALLS_PER_SECOND (default 1,000) for LAG_SECONDS (default 75), then
#    waits for the last batch. For every record: the object's LastModified in the bucket minus
#    the record's Datetime. Prints the rate reached, p50/p99/max lag, and checks that the
#    bucket holds every audited call exactly once. LAG_SECONDS=0 skips this part.
#
# Needs wrk, sqlite3, curl and python3 (`apt-get install -y wrk sqlite3`). Timing is printed,
# never asserted.
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-40}
lag_seconds=${2:-75}
rate=${3:-1000}
rounds=${4:-2}
for tool in wrk sqlite3 curl python3; do
  command -v $tool >/dev/null || { echo "$tool is missing: apt-get install -y $tool" >&2; exit 1; }
done

cargo build --release --locked -p portico --bin portico -p portico-benches --bin mcp-upstream >&2
target_dir=$(cargo metadata --format-version 1 --no-deps --locked \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
target=$target_dir/release
requirements=tests/e2e/requirements.txt
venv="$target_dir/e2e-venv-$(sha256sum "$requirements" | cut -c1-12)"
if [ ! -x "$venv/bin/moto_server" ]; then
  echo "making the Python environment of the end-to-end suite in $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
fi
py=$venv/bin/python

# shellcheck source=benches/load/lib.sh
. benches/load/lib.sh

upstream_port=$(free_port)
"$target/mcp-upstream" --listen "127.0.0.1:$upstream_port" >/dev/null &
pids+=($!)
moto_port=$(free_port)
"$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
moto=$!
pids+=($moto)
start_portico "$target/portico"
wait_http "http://127.0.0.1:$upstream_port/mcp"
wait_http "http://127.0.0.1:$moto_port/moto-api/"

s3() { # python code using `s3` (a boto3 client of moto)
  "$py" -c "import boto3, sys; s3 = boto3.client('s3', endpoint_url='http://127.0.0.1:$moto_port', region_name='us-east-1', aws_access_key_id='bench', aws_secret_access_key='bench-secret'); $1" "${@:2}"
}
s3 "s3.create_bucket(Bucket='bench')"

admin -X POST "$api/servers" -d "{\"id\":\"bench\",\"name\":\"Bench\",\"hostname\":\"http://127.0.0.1:$upstream_port/mcp\",\"auth_type\":\"unauthenticated\"}" >/dev/null
admin -X POST "$api/portals" -d '{"id":"calls","name":"Calls","hostname":"calls.example.com","servers":[{"server_id":"bench","on_behalf":false}]}' >/dev/null
service_token bench
wait_ready bench
destination="s3://bench/calls/{DATE}?region=us-east-1&endpoint=http://127.0.0.1:$moto_port&access-key-id=bench&secret-access-key=bench-secret"
new_job() { # enabled job named $1 with the Parquet output; prints its id
  admin -X POST "$base/logpush/jobs" -d "{\"dataset\":\"mcp_portal_logs\",\"name\":\"$1\",\"enabled\":true,\"destination_conf\":\"$destination\",\"max_upload_interval_seconds\":30,\"output_options\":{\"output_type\":\"parquet\"}}" | json 'd["result"]["id"]'
}
# Waits until the call log (the logs API's read model) has caught up with the log, so that one
# run's indexing does not weigh on the next.
settle() {
  for _ in $(seq 120); do
    curl -s "http://127.0.0.1:$port/metrics" | grep -q '^portico_projection_lag_events{projection="call_log"} 0$' && break
    sleep 0.5
  done
  sleep 2
}
events() { sqlite3 "$data/portico.db" "SELECT count(*) FROM events WHERE event_type = 'PortalRequestHandled'"; }

client="python3 benches/load/mcp_client.py"
portal="http://127.0.0.1:$port/portals/calls/mcp"
cred=(--header "CF-Access-Client-Id: $client_id" --header "CF-Access-Client-Secret: $client_secret")
$client sessions "$portal" 64 "${cred[@]}" >"$work/sessions"
lua=$(make_lua portal bench_echo "$work/sessions" ", [\"CF-Access-Client-Id\"] = \"$client_id\", [\"CF-Access-Client-Secret\"] = \"$client_secret\"")

# --- 1. Throughput with and without an active job ------------------------------------------------
# A: no job. B: a job created just before the run (it starts after its creation, so it pushes
# that run's calls only) and deleted after it; a run of 40 s or more includes the planning,
# encoding and upload of the first 30-second batch.
declare -A runs
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / hz)}' "/proc/$1/stat"; }
run() { # label
  local portico_before moto_before
  portico_before=$(cpu_ms "$portico"); moto_before=$(cpu_ms "$moto")
  wrk -t2 -c64 -d"${duration}s" --latency -s "$lua" "$portal" >"$work/$1.out"
  local portico_cpu=$(( $(cpu_ms "$portico") - portico_before )) moto_cpu=$(( $(cpu_ms "$moto") - moto_before ))
  runs[$1]="$(grep '^RESULT' "$work/$1.out" | cut -d' ' -f2-) $portico_cpu"
  read -r requests rps p50 p99 _ errors socket _ <<<"${runs[$1]}"
  echo "   $1: $rps req/s, p50 $((p50 / 1000)).$(printf '%03d' $((p50 % 1000))) ms, p99 $((p99 / 1000)).$(printf '%03d' $((p99 % 1000))) ms, $errors bad answers, $socket socket errors; portico CPU $((portico_cpu * 1000 / requests)) us per call, moto CPU ${moto_cpu} ms" >&2
}
echo "== tools/call through a portal, 64 connections, ${duration}s per run, without a job (A) and with one (B)" >&2
wrk -t2 -c64 -d5s -s "$lua" "$portal" >/dev/null  # warm-up
with_job() { # round
  settle; job=$(new_job "bench-$1"); sleep 1; run "B$1"
  objects=$(s3 "print(len(s3.list_objects_v2(Bucket='bench').get('Contents', [])))")
  echo "   B$1: $objects objects in the bucket so far" >&2
  admin -X DELETE "$base/logpush/jobs/$job" >/dev/null
}
# A B, then B A: the order alternates so that a drift over the runs (the log and the call log
# grow by every run) weighs on both sides alike.
for round in $(seq "$rounds"); do
  if [ $((round % 2)) = 1 ]; then
    settle; run "A$round"; with_job "$round"
  else
    with_job "$round"; settle; run "A$round"
  fi
done
settle

# --- 2. Lag at a steady rate -------------------------------------------------------------------
# A fresh job starts after its creation: the lag run's calls only, in an empty bucket.
lag() {
s3 "
for o in s3.list_objects_v2(Bucket='bench').get('Contents', []): s3.delete_object(Bucket='bench', Key=o['Key'])"
job=$(new_job lag)
sleep 2
connections=16
paced=$work/paced.lua
cp "$lua" "$paced"
# Each connection waits this long before each request; the answer's own time comes on top.
echo "function delay() return $((connections * 1000 / rate)) end" >>"$paced"
before=$(events)
echo "== lag: about $rate calls/s for ${lag_seconds}s on $connections connections, max_upload_interval_seconds=30" >&2
wrk -t2 -c$connections -d"${lag_seconds}s" --latency -s "$paced" "$portal" >"$work/lag.out"
sent_at=$(date +%s)
sleep 1
calls=$(( $(events) - before ))
read -r _ lag_rps _ _ _ lag_errors _ <<<"$(grep '^RESULT' "$work/lag.out" | cut -d' ' -f2-)"
echo "   $calls calls audited at $lag_rps req/s ($lag_errors bad answers); waiting for the last batch" >&2
cat >"$work/lag.py" <<'PY'
import io, sys, time
import boto3, duckdb
endpoint, calls, deadline, work = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="bench", aws_secret_access_key="bench-secret")
while True:
    objects = s3.list_objects_v2(Bucket="bench").get("Contents", [])
    db = duckdb.connect()
    db.execute("CREATE TABLE r (session VARCHAR, called TIMESTAMPTZ, modified TIMESTAMPTZ, key VARCHAR)")
    for o in objects:
        body = s3.get_object(Bucket="bench", Key=o["Key"])["Body"].read()
        path = f"{work}/lag-{abs(hash(o['Key']))}.parquet"
        open(path, "wb").write(body)
        db.execute(f"INSERT INTO r SELECT SessionID, Datetime, ?, ? FROM read_parquet('{path}')",
                   [o["LastModified"], o["Key"]])
    rows = db.execute("SELECT count(*) FROM r").fetchone()[0]
    if rows >= calls or time.time() > deadline:
        break
    time.sleep(2)
# Objects are named `<first>-<last>_<job>.parquet` after their range of log positions.
ranges = sorted(tuple(map(int, o["Key"].rsplit("/", 1)[1].split("_")[0].split("-"))) for o in objects)
overlaps = sum(1 for (_, a), (b, _) in zip(ranges, ranges[1:]) if b <= a)
lag = db.execute("SELECT quantile_cont(epoch(modified) - epoch(called), [0.5, 0.99]), max(epoch(modified) - epoch(called)) FROM r").fetchone()
print(f"   {len(objects)} objects, {rows} records for {calls} calls, {overlaps} overlapping ranges")
print(f"   lag from call to object: p50 {lag[0][0]:.1f} s, p99 {lag[0][1]:.1f} s, max {lag[1]:.1f} s")
PY
"$py" "$work/lag.py" "http://127.0.0.1:$moto_port" "$calls" "$((sent_at + 90))" "$work" >&2
}
[ "$lag_seconds" = 0 ] || lag

# --- Summary -------------------------------------------------------------------------------------
summary=()
for round in $(seq "$rounds"); do summary+=("${runs[A$round]}" "${runs[B$round]}"); done
python3 - "${summary[@]}" <<'PY'
import sys
runs = [run.split() for run in sys.argv[1:]]
rps = [float(run[1]) for run in runs]
# CPU per call, microseconds: the process's CPU time over the run's requests.
cpu = [float(run[-1]) * 1000 / float(run[0]) for run in runs]
a, b = rps[0::2], rps[1::2]
change = (sum(b) / len(b)) / (sum(a) / len(a)) - 1
cpu_change = (sum(cpu[1::2]) / len(b)) / (sum(cpu[0::2]) / len(a)) - 1
print(f"== throughput: without a job {', '.join(f'{x:.0f}' for x in a)} req/s; "
      f"with one {', '.join(f'{x:.0f}' for x in b)} req/s; change {change * 100:+.1f}%")
print(f"== Portico CPU per call: without a job {sum(cpu[0::2]) / len(a):.0f} us; "
      f"with one {sum(cpu[1::2]) / len(b):.0f} us; change {cpu_change * 100:+.1f}%")
PY
echo "== machine: $(nproc) cores, $(uname -sr), $(date -u +%Y-%m-%d)"
