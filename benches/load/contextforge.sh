# shellcheck shell=bash disable=SC2034,SC2154 # sets variables for, and uses those of, compare.sh and lib.sh
# The peer gateway for benches/load/compare.sh (sourced after lib.sh, not run): IBM ContextForge
# (`mcp-contextforge-gateway` from PyPI) installed into a virtual environment, started as its
# production set-up is (Gunicorn with Uvicorn workers), one upstream registered, and a JWT for
# the client.
#
# Version: 1.1.0, the newest on PyPI when this was written. It needs Python >= 3.12 and < 3.14,
# while this machine's python3 is 3.11, so the venv is made (`python -m venv`) from a 3.12 (or
# 3.13) interpreter: $CONTEXTFORGE_PYTHON if set, else python3.12 / python3.13 on PATH, else
# pyenv's. The venv is cached in the cargo target directory, keyed by version and Python
# (`$target_dir/contextforge-1.1.0-py3.12`, with `freeze.txt` listing what pip resolved), like
# the npm peers; delete it to reinstall. Installing takes about 40 s on the 2-core machine
# (~90 packages, 245 MB). Only the gateway's own version is pinned: its dependencies are
# `>=` ranges, resolved at install time, so a later reinstall may pick newer ones (freeze.txt).
#
# Settings (environment variables, names from mcpgateway/config.py), and why:
# - gunicorn mcpgateway.main:app with --worker-class uvicorn.workers.UvicornWorker --workers 2:
#   what its docs and `make serve` (run-gunicorn.sh + gunicorn.config.py) run in production;
#   2 workers is the count its gunicorn.config.py ships and matches this machine's 2 cores (its
#   run-gunicorn.sh "auto" would start 2*cores+1 = 5, which on 2 cores shared with the client,
#   the upstream and Portico only adds contention). Portico's runtime also runs 2 threads here.
#   Each worker forks 2 jq and 2 schema-validation sandbox processes (its defaults): they are
#   part of the process tree that CPU and memory are summed over.
# - --preload, --timeout 600, --max-requests 100000 --max-requests-jitter 100, access log off,
#   --no-control-socket: run-gunicorn.sh's defaults on Linux (access log off is its
#   "performance" default; no control socket keeps runs from sharing ~/.gunicorn/gunicorn.ctl).
#   The config file only carries its post_fork hook: each worker drops the SQLAlchemy pool it
#   inherited from the preloaded master.
# - DATABASE_URL=sqlite in the work directory: a fresh store each run, as Portico's SQLite data
#   directory is. CACHE_TYPE stays at its default, `database`: the multi-worker-safe cache
#   without Redis (`memory` would be per worker), and neither side gets a Redis.
# - AUTH_REQUIRED=true, MCP_CLIENT_AUTH_ENABLED=true (defaults, set explicitly): every MCP
#   request carries a JWT bearer it verifies, as Portico authenticates every call (a service
#   token) and checks it against policy. REQUIRE_USER_IN_DB stays true: the token's subject is
#   the bootstrapped PLATFORM_ADMIN_EMAIL user, minted with its own utility
#   `python -m mcpgateway.utils.create_jwt_token --username ... --exp ...` (signed with
#   JWT_SECRET_KEY from the environment, so the secret is never on a command line).
# - JWT_SECRET_KEY, AUTH_ENCRYPTION_SECRET, PLATFORM_ADMIN_PASSWORD, DEFAULT_USER_PASSWORD:
#   random per run (it refuses to start on its weak defaults); they live only in the gateway's
#   and the token utility's environment.
# - RATE_LIMITING_ENABLED=false: on by default, with 100 requests/minute per client for the
#   MCP/tools tier, which would cap throughput; Portico has no rate limit in this path.
# - SSRF_ALLOW_LOCALHOST=true: the upstream is on loopback, which it blocks by default; the
#   counterpart of Portico's --allow-private-upstreams.
# - ENVIRONMENT=production: its production profile (strong secrets required, secure cookies).
# - APP_DOMAIN=http://127.0.0.1:PORT: so the URL it reports for the virtual server is the one
#   reached here.
# - MCPGATEWAY_UI_ENABLED=false, MCPGATEWAY_ADMIN_API_ENABLED=false (defaults): no admin UI;
#   /gateways, /tools and /servers are its main REST API, which is all the set-up uses.
# - LOG_LEVEL=ERROR (its default), as Portico runs with RUST_LOG=warn.
# - Left at defaults, on purpose: USE_STATEFUL_SESSIONS=false and JSON_RESPONSE_ENABLED=true
#   (stateless streamable HTTP answering JSON; stateful sessions across workers need its
#   Redis-backed session affinity, unless every client keeps a session on one connection).
#   Stateless has a cost: it reuses an upstream MCP session only within a downstream
#   Mcp-Session-Id, so without one each proxied call opens a fresh upstream session with a new
#   HTTP client, whose TLS context loads the CA store even for an http:// upstream (a third of a
#   worker's CPU in a py-spy profile here). Also default: tool metrics buffered into the
#   database, audit trail off, observability off, plugins off, response compression on.
# - Run from its own directory (it reads a `.env` from the current directory) with TMPDIR
#   there (its migration and leader lock files go to the temp directory).
#
# Upstream: a "gateway" (POST /gateways, transport STREAMABLEHTTP) pointing at the upstream's
# /mcp, then a "virtual server" (POST /servers) exposing that gateway's tools; clients use the
# server's `url` (`/servers/<id>/mcp`). It names tools `<gateway slug>-<tool>`: the name it
# exposes for `echo` is read back from GET /tools.

contextforge_version=1.1.0

# contextforge_python: prints an interpreter ContextForge supports (3.12 or 3.13).
contextforge_python() {
  local pyenv_root candidate
  pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
  for candidate in "${CONTEXTFORGE_PYTHON:-}" python3.12 python3.13 \
    "$pyenv_root"/versions/3.12*/bin/python3 "$pyenv_root"/versions/3.13*/bin/python3 python3; do
    [ -n "$candidate" ] || continue
    if "$candidate" -c 'import sqlite3, sys, venv; sys.exit(not (3, 12) <= sys.version_info[:2] < (3, 14))' 2>/dev/null; then
      "$candidate" -c 'import sys; print(sys.executable)'
      return 0
    fi
  done
  return 1
}

# install_contextforge TARGET_DIR: the cached venv (installed on first use); sets `cf_venv`.
install_contextforge() {
  local python minor started
  python=$(contextforge_python) || {
    echo "ContextForge $contextforge_version needs Python 3.12 or 3.13: none found (set CONTEXTFORGE_PYTHON)" >&2
    exit 1
  }
  minor=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  cf_venv="$1/contextforge-$contextforge_version-py$minor"
  if [ ! -f "$cf_venv/.installed" ]; then
    echo "installing ContextForge $contextforge_version from PyPI into $cf_venv (Python $minor)" >&2
    started=$SECONDS
    rm -rf "$cf_venv"
    "$python" -m venv "$cf_venv"
    "$cf_venv/bin/python" -m pip install --disable-pip-version-check --no-input --quiet \
      "mcp-contextforge-gateway==$contextforge_version" >&2
    "$cf_venv/bin/python" -m pip freeze --disable-pip-version-check >"$cf_venv/freeze.txt"
    touch "$cf_venv/.installed"
    echo "installed ContextForge in $((SECONDS - started)) s" >&2
  fi
}

# start_contextforge: Gunicorn + 2 Uvicorn workers on a free port over a fresh SQLite file, once
# /health says healthy; mints the client's JWT. Sets `cf_port`, `cf_pid` (the Gunicorn master),
# `cf_base` and `cf_token`. $CONTEXTFORGE_SETTINGS (space-separated NAME=VALUE) adds to or
# overrides the settings above, for experiments (e.g. USE_STATEFUL_SESSIONS=true).
start_contextforge() {
  local dir=$work/contextforge i extra
  read -ra extra <<<"${CONTEXTFORGE_SETTINGS:-}"
  mkdir -p "$dir/tmp"
  cf_port=$(free_port)
  cf_base="http://127.0.0.1:$cf_port"
  local secrets
  mapfile -t secrets < <(python3 -c 'import secrets; [print(secrets.token_urlsafe(48)) for _ in range(4)]')
  local cf_env=(
    HOST=127.0.0.1 PORT="$cf_port" APP_DOMAIN="$cf_base" ENVIRONMENT=production
    DATABASE_URL="sqlite:///$dir/mcp.db"
    AUTH_REQUIRED=true MCP_CLIENT_AUTH_ENABLED=true
    JWT_SECRET_KEY="${secrets[0]}" AUTH_ENCRYPTION_SECRET="${secrets[1]}"
    PLATFORM_ADMIN_EMAIL=admin@example.com PLATFORM_ADMIN_PASSWORD="${secrets[2]}"
    DEFAULT_USER_PASSWORD="${secrets[3]}"
    RATE_LIMITING_ENABLED=false SSRF_ALLOW_LOCALHOST=true
    MCPGATEWAY_UI_ENABLED=false MCPGATEWAY_ADMIN_API_ENABLED=false LOG_LEVEL=ERROR
    TMPDIR="$dir/tmp" "${extra[@]}"
  )
  cat >"$dir/gunicorn.conf.py" <<'EOF'
def post_fork(server, worker):
    # As ContextForge's own gunicorn.config.py: with --preload, each worker drops the
    # SQLAlchemy pool it inherited from the master.
    from mcpgateway.db import engine

    engine.dispose(close=False)
EOF
  (
    cd "$dir" && export "${cf_env[@]}"
    exec "$cf_venv/bin/gunicorn" mcpgateway.main:app -c gunicorn.conf.py \
      --worker-class uvicorn.workers.UvicornWorker --workers 2 --bind "127.0.0.1:$cf_port" \
      --preload --timeout 600 --max-requests 100000 --max-requests-jitter 100 \
      --access-logfile /dev/null --error-logfile - --log-level warning --no-control-socket
  ) >"$work/contextforge.log" 2>&1 &
  cf_pid=$!
  pids+=("$cf_pid")
  for i in $(seq 600); do # up to 2 minutes: it runs its migrations and bootstrap on start
    curl -s "$cf_base/health" 2>/dev/null | grep -q '"status":"healthy"' && break
    if ! kill -0 "$cf_pid" 2>/dev/null || [ "$i" = 600 ]; then
      echo "ContextForge did not come up" >&2
      tail -20 "$work/contextforge.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  cf_token=$(cd "$dir" && export "${cf_env[@]}" && "$cf_venv/bin/python" -m mcpgateway.utils.create_jwt_token \
    --username admin@example.com --exp 1440)
}

cf_api() { curl -sSf -H "Authorization: Bearer $cf_token" -H 'Content-Type: application/json' "$@"; }

# contextforge_register UPSTREAM_URL: a gateway for the streamable-HTTP upstream and a virtual
# server with all its tools; sets `cf_url` (the server's MCP endpoint) and `cf_echo` (the name
# it exposes for the upstream's `echo`).
contextforge_register() {
  local gateway_id ids
  gateway_id=$(cf_api -X POST "$cf_base/gateways" \
    -d "{\"name\":\"everything\",\"url\":\"$1\",\"transport\":\"STREAMABLEHTTP\"}" | json 'd["id"]')
  read -r ids cf_echo < <(cf_api "$cf_base/tools?limit=0" | python3 -c '
import json, sys
mine = [t for t in json.load(sys.stdin) if t["gatewayId"] == sys.argv[1]]
print(json.dumps([t["id"] for t in mine], separators=(",", ":")), [t["name"] for t in mine if t["originalName"] == "echo"][0])
' "$gateway_id")
  cf_url=$(cf_api -X POST "$cf_base/servers" \
    -d "{\"server\":{\"name\":\"compare\",\"description\":\"compare.sh\",\"associated_tools\":$ids}}" | json 'd["url"]')
}
