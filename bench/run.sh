#!/usr/bin/env bash
# End-to-end benchmark: wrk -> nginx -> each WSGI backend, on loopback.
# See bench/README.md. `bench/run.sh --help` for the options.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
LIB="$BENCH_DIR/lib"
APP_ROOT="$BENCH_DIR/apps"
ORIG_CMD="$0 $*"

usage() {
    cat <<EOF
Usage: bench/run.sh [--quick] [--build] [--no-install] [--help]

Runs every backend behind nginx on loopback, loads it with wrk, and writes
bench/results/latest.md (Markdown table) and latest.json (raw runs).

  --quick       smoke test: RUNS=1, DURATION=2, WARMUP=1, WARMUP_MAX=2, APPS=hello
  --build       cargo build --release the pyfcgi binary and the ceiling
                example first, and use them (sets PYFCGI_BIN, CEILING_BIN)
  --no-install  do not apt-get or pip anything; fail if something is missing
  -h, --help    this text

Environment (defaults in brackets):
  RUNS [5]            measured wrk runs per cell
  DURATION [10]       seconds per measured run
  WARMUP [3]          seconds of the first unrecorded warm-up run; each
                      next one lasts twice as long, until two in a row agree
                      within 25% on req/s, at most WARMUP_MAX [4] of them
  CONNS ["16 1"]      connection-count profiles (wrk -c)
  WRK_THREADS [1]     wrk -t (2 cores: wrk, nginx and the backend share them)
  APPS ["hello flask stream upload post8k post16k post64k post256k"]
                      (postNk: an N KiB POST to upload:app, at 1 connection only)
  BACKENDS ["pyfcgi-bind pyfcgi-fd0 ceiling uwsgi uwsgi-default flup
             flup-unix wfastcgi gunicorn-sync gunicorn-gthread waitress"]
  PYTHON [/root/.pyenv/versions/3.11.7/bin/python3]  CPython for the venv
  PYFCGI_BIN          pyfcgi binary; unset or missing: pyfcgi rows say skipped
  CEILING_BIN [\$REPO/target/release/examples/ceiling]; missing: skipped
  PYFCGI_BIND_CMD, PYFCGI_FD0_CMD, CEILING_CMD  command templates (below)
  WORK_DIR [bench/.work]  venv, logs, generated configs
  OUT_DIR [bench/results]
  BASE_PORT [18100]   first loopback port used

Command templates are split on spaces after substituting {addr}
(127.0.0.1:PORT), {app} (MODULE:CALLABLE), {app_root}, {module},
{callable}, {venv}, {python} (the venv's python) and {pyfcgi}.
EOF
}

QUICK=0 BUILD=0 INSTALL=1
for arg in "$@"; do
    case "$arg" in
        --quick) QUICK=1 ;;
        --build) BUILD=1 ;;
        --no-install) INSTALL=0 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
    esac
done

if [ "$QUICK" = 1 ]; then
    RUNS=${RUNS:-1} DURATION=${DURATION:-2} WARMUP=${WARMUP:-1} WARMUP_MAX=${WARMUP_MAX:-2} APPS=${APPS:-hello}
fi
RUNS=${RUNS:-5}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
WARMUP_MAX=${WARMUP_MAX:-4}
CONNS=${CONNS:-"16 1"}
WRK_THREADS=${WRK_THREADS:-1}
APPS=${APPS:-"hello flask stream upload post8k post16k post64k post256k"}
BACKENDS=${BACKENDS:-"pyfcgi-bind pyfcgi-fd0 ceiling uwsgi uwsgi-default flup flup-unix wfastcgi gunicorn-sync gunicorn-gthread waitress"}
PYTHON=${PYTHON:-/root/.pyenv/versions/3.11.7/bin/python3}
WORK_DIR=${WORK_DIR:-"$BENCH_DIR/.work"}
OUT_DIR=${OUT_DIR:-"$BENCH_DIR/results"}
BASE_PORT=${BASE_PORT:-18100}
CEILING_BIN=${CEILING_BIN:-"$REPO_DIR/target/release/examples/ceiling"}
PYFCGI_BIN=${PYFCGI_BIN:-}

# The command lines of the backends that are not ours to know in advance.
# pyfcgi's CLI is still being built: adjust here (or via the environment).
# --no-access-log: uWSGI runs with --disable-logging; the others log nothing per request.
PYFCGI_BIND_CMD=${PYFCGI_BIND_CMD:-"{pyfcgi} --bind {addr} --app {app} --app-root {app_root} --no-access-log"}
PYFCGI_FD0_CMD=${PYFCGI_FD0_CMD:-"{python} $LIB/fd0spawn.py {addr} {pyfcgi} --app {app} --app-root {app_root} --no-access-log"}
# pyfcgi-access-log: pyfcgi's default, one access line per request (to stderr, which goes to the backend's log file).
PYFCGI_ACCESS_CMD=${PYFCGI_ACCESS_CMD:-"{pyfcgi} --bind {addr} --app {app} --app-root {app_root}"}
CEILING_CMD=${CEILING_CMD:-"{ceiling} --bind {addr} --app {app}"}

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- install
ensure_tools() {
    local missing=()
    command -v nginx >/dev/null || missing+=(nginx-light)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v setsid >/dev/null || missing+=(util-linux)
    command -v timeout >/dev/null || missing+=(coreutils)
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$INSTALL" = 1 ] || die "missing ${missing[*]} and --no-install given"
    log "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; then
        timeout 300 apt-get update -q >/dev/null
        timeout 600 apt-get install -y -q "${missing[@]}" >/dev/null
    fi
}

ensure_venv() {
    [ -x "$PYTHON" ] || die "PYTHON=$PYTHON is not an executable"
    local tag
    tag=$("$PYTHON" -c 'import sys; print("py%d%d" % sys.version_info[:2])')
    VENV="$WORK_DIR/venv-$tag"
    local stamp="$VENV/.bench-requirements" wanted
    # The venv's scripts carry its absolute path in their #! lines, so a venv copied or moved from another
    # checkout is rebuilt, like one made from other requirements.
    wanted=$(cat "$BENCH_DIR/requirements.txt"; echo "# venv: $VENV")
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
        :
    else
        [ "$INSTALL" = 1 ] || die "venv $VENV missing or stale and --no-install given"
        log "creating venv $VENV with $PYTHON (uWSGI builds from source: about a minute)"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV"
        timeout 900 "$VENV/bin/pip" install -q --disable-pip-version-check \
            -r "$BENCH_DIR/requirements.txt" >"$WORK_DIR/pip.log" 2>&1 \
            || { tail -30 "$WORK_DIR/pip.log" >&2; die "pip install failed (log: $WORK_DIR/pip.log)"; }
        printf '%s\n' "$wanted" >"$stamp"
    fi
    VPY="$VENV/bin/python"
    # uWSGI links the CPython's libpython; check that it loads.
    "$VENV/bin/uwsgi" --version >/dev/null 2>&1 \
        || die "$VENV/bin/uwsgi does not run: $("$VENV/bin/uwsgi" --version 2>&1 | tail -2)"
    WFASTCGI_PY=$("$VPY" -c 'import importlib.util as u; print(u.find_spec("wfastcgi").origin)')
}

build_rust() {
    command -v cargo >/dev/null || die "--build needs cargo"
    log "cargo build --release (pyfcgi, example ceiling)"
    (cd "$REPO_DIR" && cargo build --release --bin pyfcgi && cargo build --release --example ceiling) >&2 \
        || die "cargo build failed"
    PYFCGI_BIN="$REPO_DIR/target/release/pyfcgi"
    CEILING_BIN="$REPO_DIR/target/release/examples/ceiling"
}

# ---------------------------------------------------------------- process control
STARTED_PGIDS=()   # process groups this script started (each backend, nginx, sampler)

kill_group() {   # kill_group PGID: TERM, up to 5 s grace, then KILL
    local pg=$1 i
    kill -TERM -- "-$pg" 2>/dev/null || return 0
    for i in $(seq 50); do
        kill -0 -- "-$pg" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL -- "-$pg" 2>/dev/null || true
}

cleanup() {
    local pg
    # A second Ctrl-C or TERM (timeout and the terminal both send one) must not cut the cleanup short and leave
    # backends and nginx running.
    trap '' INT TERM
    for pg in "${STARTED_PGIDS[@]}"; do kill_group "$pg"; done
    STARTED_PGIDS=()
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

start_group() {   # start_group LOGFILE CMD...: new session, pid == pgid; sets STARTED_PID
    local logfile=$1; shift
    setsid "$@" </dev/null >"$logfile" 2>&1 &
    STARTED_PID=$!
    STARTED_PGIDS+=("$STARTED_PID")
}

stop_group() {
    local pg=$1 keep=() p
    kill_group "$pg"
    wait "$pg" 2>/dev/null || true
    for p in "${STARTED_PGIDS[@]}"; do [ "$p" = "$pg" ] || keep+=("$p"); done
    STARTED_PGIDS=("${keep[@]+"${keep[@]}"}")
}

NEXT_PORT=$BASE_PORT
free_port() {   # sets PORT to the next free loopback port
    while :; do
        PORT=$NEXT_PORT
        NEXT_PORT=$((NEXT_PORT + 1))
        if "$PYTHON" -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$PORT" 2>/dev/null; then
            return 0
        fi
    done
}

# ---------------------------------------------------------------- apps and backends
app_spec() {   # app name -> MODULE:CALLABLE
    case "$1" in
        hello) echo hello:app ;;
        flask) echo flask_hello:app ;;
        stream) echo stream:app ;;
        upload|post8k|post16k|post64k|post256k) echo upload:app ;;
        *) die "unknown app $1" ;;
    esac
}

fill() {   # fill TEMPLATE: substitute the {placeholders}
    local t=$1
    t=${t//\{addr\}/$ADDR}
    t=${t//\{app\}/$SPEC}
    t=${t//\{app_root\}/$APP_ROOT}
    t=${t//\{module\}/${SPEC%%:*}}
    t=${t//\{callable\}/${SPEC##*:}}
    t=${t//\{venv\}/$VENV}
    t=${t//\{python\}/$VPY}
    t=${t//\{pyfcgi\}/$PYFCGI_BIN}
    t=${t//\{ceiling\}/$CEILING_BIN}
    echo "$t"
}

# backend_setup NAME APP: sets KIND (fcgi|http), UPSTREAM (nginx server
# address), BUFFERING, CMD (array), ENVS (array of VAR=value), SKIP (reason)
backend_setup() {
    local name=$1 app=$2
    SPEC=$(app_spec "$app")
    free_port; ADDR="127.0.0.1:$PORT"
    UPSTREAM=$ADDR KIND=fcgi BUFFERING=on KEEPCONN=on SKIP="" CMD=() ENVS=() EXTRA_PARAMS=""
    local module=${SPEC%%:*} callable=${SPEC##*:}
    case "$name" in
        pyfcgi-bind|pyfcgi-fd0|pyfcgi-access-log)
            if [ -z "$PYFCGI_BIN" ]; then SKIP="PYFCGI_BIN is not set"; return; fi
            if [ ! -x "$PYFCGI_BIN" ]; then SKIP="PYFCGI_BIN=$PYFCGI_BIN does not exist"; return; fi
            ENVS=(VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH")
            if [ "$name" = pyfcgi-bind ]; then
                read -r -a CMD <<<"$(fill "$PYFCGI_BIND_CMD")"
            elif [ "$name" = pyfcgi-access-log ]; then
                read -r -a CMD <<<"$(fill "$PYFCGI_ACCESS_CMD")"
            else
                read -r -a CMD <<<"$(fill "$PYFCGI_FD0_CMD")"
            fi ;;
        ceiling)
            if [ ! -x "$CEILING_BIN" ]; then
                SKIP="ceiling binary $CEILING_BIN does not exist (cargo build --release --example ceiling, or --build)"; return
            fi
            read -r -a CMD <<<"$(fill "$CEILING_CMD")" ;;
        uwsgi)
            KEEPCONN=off   # uWSGI closes after every request whatever FCGI_KEEP_CONN says
            CMD=("$VENV/bin/uwsgi" --fastcgi-socket "$ADDR" --master --processes 1 --threads 1
                 --die-on-term --need-app --disable-logging --buffer-size 32768
                 --chdir "$APP_ROOT" --wsgi-file "$APP_ROOT/$module.py" --callable "$callable") ;;
        uwsgi-default)
            KEEPCONN=off
            CMD=("$VENV/bin/uwsgi" --fastcgi-socket "$ADDR" --need-app --disable-logging
                 --chdir "$APP_ROOT" --wsgi-file "$APP_ROOT/$module.py" --callable "$callable") ;;
        flup)
            CMD=("$VPY" "$LIB/flup_server.py" "tcp:$ADDR" "$APP_ROOT" "$SPEC") ;;
        flup-unix)
            UPSTREAM="unix:$RUN_DIR/flup-$app.sock"
            CMD=("$VPY" "$LIB/flup_server.py" "$UPSTREAM" "$APP_ROOT" "$SPEC") ;;
        wfastcgi)
            # IIS-like site folder: Web.config appSettings, sent as APPL_PHYSICAL_PATH.
            local site="$RUN_DIR/wfastcgi-site-$app"
            mkdir -p "$site"
            cat >"$site/Web.config" <<EOF
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <appSettings>
    <add key="WSGI_HANDLER" value="$module.$callable" />
    <add key="PYTHONPATH" value="$APP_ROOT" />
    <add key="WSGI_RESTART_FILE_REGEX" value="" />
  </appSettings>
</configuration>
EOF
            BUFFERING=${WFASTCGI_BUFFERING:-off}   # wfastcgi ends the stream (empty STDOUT) after every write
            EXTRA_PARAMS="fastcgi_param APPL_PHYSICAL_PATH $site;"
            UPSTREAM="unix:$RUN_DIR/wfastcgi-$app.sock"   # the named pipe's analogue
            CMD=("$VPY" "$LIB/wfastcgi_launcher.py" "$UPSTREAM" "$VPY" "$WFASTCGI_PY") ;;
        gunicorn-sync)
            KIND=http
            CMD=("$VENV/bin/gunicorn" --bind "$ADDR" --workers 1 --worker-class sync
                 --chdir "$APP_ROOT" "$SPEC") ;;
        gunicorn-gthread)
            KIND=http
            CMD=("$VENV/bin/gunicorn" --bind "$ADDR" --workers 1 --worker-class gthread --threads 4
                 --chdir "$APP_ROOT" "$SPEC") ;;
        waitress)
            KIND=http
            CMD=("$VENV/bin/waitress-serve" --listen="$ADDR" --threads=4 "$SPEC") ;;
        *) die "unknown backend $name" ;;
    esac
}

write_nginx_conf() {   # write_nginx_conf DIR NGINX_PORT
    local dir=$1 port=$2 loc upstream_keepalive=""
    mkdir -p "$dir"
    if [ "$KIND" = http ] || [ "$KEEPCONN" = on ]; then
        upstream_keepalive="keepalive 64;
        keepalive_requests 10000000;
        keepalive_timeout 120s;"
    fi
    if [ "$KIND" = fcgi ]; then
        loc="fastcgi_pass backend;
            fastcgi_keep_conn $KEEPCONN;
            fastcgi_ignore_client_abort on;
            fastcgi_buffering $BUFFERING;
            fastcgi_buffer_size 64k;
            fastcgi_buffers 32 64k;
            fastcgi_max_temp_file_size 0;
            fastcgi_read_timeout 60s;
            fastcgi_param QUERY_STRING \$query_string;
            fastcgi_param REQUEST_METHOD \$request_method;
            fastcgi_param CONTENT_TYPE \$content_type;
            fastcgi_param CONTENT_LENGTH \$content_length;
            fastcgi_param SCRIPT_NAME \"\";
            fastcgi_param PATH_INFO \$uri;
            fastcgi_param REQUEST_URI \$request_uri;
            fastcgi_param DOCUMENT_URI \$document_uri;
            fastcgi_param SERVER_PROTOCOL \$server_protocol;
            fastcgi_param REQUEST_SCHEME \$scheme;
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
            fastcgi_param SERVER_SOFTWARE nginx/\$nginx_version;
            fastcgi_param REMOTE_ADDR \$remote_addr;
            fastcgi_param REMOTE_PORT \$remote_port;
            fastcgi_param SERVER_ADDR \$server_addr;
            fastcgi_param SERVER_PORT \$server_port;
            fastcgi_param SERVER_NAME \$server_name;
            $EXTRA_PARAMS"
    else
        loc="proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_ignore_client_abort on;
            proxy_set_header Host \$host;
            proxy_buffer_size 64k;
            proxy_buffers 32 64k;
            proxy_max_temp_file_size 0;
            proxy_read_timeout 60s;"
    fi
    cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    fastcgi_temp_path $dir/fastcgi;
    proxy_temp_path $dir/proxy;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    client_max_body_size 2m;
    client_body_buffer_size 2m;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    upstream backend {
        server $UPSTREAM;
        $upstream_keepalive
    }
    server {
        listen 127.0.0.1:$port backlog=4096;
        location / {
            $loc
        }
    }
}
EOF
}

# ---------------------------------------------------------------- measuring
RAW=""   # JSON-lines file of every record

record() {   # record JSON: append one line
    printf '%s\n' "$1" >>"$RAW"
}

json_str() { "$PYTHON" -c 'import json,sys; print(json.dumps(sys.stdin.read()))'; }

record_status() {   # record_status BACKEND APP STATUS REASON [LOGFILE...]
    local b=$1 a=$2 st=$3 reason=$4; shift 4
    local tail_text=""
    local f
    for f in "$@"; do
        [ -s "$f" ] && tail_text+="==> $(basename "$f") <==
$(tail -n 25 "$f")
"
    done
    record "{\"backend\":\"$b\",\"app\":\"$a\",\"status\":\"$st\",\"reason\":$(printf '%s' "$reason" | json_str),\"log_tail\":$(printf '%s' "$tail_text" | json_str)}"
}

wrk_once() {   # wrk_once CONNS SECONDS OUTFILE
    local c=$1 d=$2 out=$3 script=wrk_get.lua
    local post_bytes=$((1024 * 1024))
    case $APP in upload) script=wrk_post.lua ;; post*k) script=wrk_post.lua post_bytes=$((${APP//[a-z]/} * 1024)) ;; esac
    POST_BYTES=$post_bytes BENCH_LIB="$LIB" timeout $((d + 60)) wrk -t"$(( WRK_THREADS < c ? WRK_THREADS : c ))" -c"$c" -d"${d}s" \
        --timeout 10s --latency -s "$LIB/$script" "$URL" >"$out" 2>&1
}

# Every backend of an app runs at the same time (each behind its own nginx) and the measured runs are
# interleaved: round r measures each backend once, starting one place further along the list each round.
# On a shared machine the available CPU drifts by tens of percent over minutes; interleaving spreads that
# drift over all backends instead of favouring whichever happened to run in a quiet minute, which is what
# makes the ratios between them (× uWSGI, × ceiling) meaningful.
declare -A B_PID B_NGINX B_URL B_CELL B_LOG B_LIVE B_SETTLED B_NERR0

nginx_errors() {   # nginx_errors ERROR_LOG: how many error-level lines it has
    grep -cE '\[(error|crit|alert|emerg)\]' "$1" 2>/dev/null || true
}

start_backend() {   # start_backend BACKEND APP: start it and its nginx; B_LIVE[BACKEND]=1 once it answers right
    local b=$1 a=$2
    APP=$a
    B_LIVE[$b]=0
    backend_setup "$b" "$a"
    if [ -n "$SKIP" ]; then
        log "$b/$a: skipped: $SKIP"
        record_status "$b" "$a" skipped "$SKIP"
        return 0
    fi
    local cell="$RUN_DIR/$b-$a"
    mkdir -p "$cell"
    local blog="$cell/backend.log"
    echo "# ${ENVS[*]+${ENVS[*]}} ${CMD[*]}" >"$cell/command"
    log "$b/$a: starting: ${CMD[*]}"
    start_group "$blog" env "${ENVS[@]+"${ENVS[@]}"}" bash -c 'cd "$1" && shift && exec "$@"' _ "$APP_ROOT" "${CMD[@]}"
    local bpid=$STARTED_PID
    free_port; local nport=$PORT
    write_nginx_conf "$cell/nginx" "$nport"
    start_group "$cell/nginx.log" nginx -p "$cell/nginx" -c "$cell/nginx/nginx.conf" -e "$cell/nginx/error.log"
    local npid=$STARTED_PID
    local url="http://127.0.0.1:$nport/"

    # Ready and correct? Up to 30 s for the first right answer.
    local probe_mode="" ok=0 i out=""
    [ "$b" = ceiling ] && probe_mode=status-only
    for i in $(seq 100); do
        if ! kill -0 "$bpid" 2>/dev/null; then break; fi
        if out=$("$PYTHON" "$LIB/probe.py" "$a" "$url" $probe_mode 2>&1); then ok=1; break; fi
        sleep 0.3
    done
    if [ "$ok" != 1 ]; then
        local why="did not answer correctly within 30 s"
        kill -0 "$bpid" 2>/dev/null || why="exited during start-up"
        log "$b/$a: FAILED: $why: $out"
        record_status "$b" "$a" failed "$why; last probe: $out" "$blog" "$cell/nginx/error.log"
        stop_group "$npid"; stop_group "$bpid"
        return 0
    fi
    B_PID[$b]=$bpid B_NGINX[$b]=$npid B_URL[$b]=$url B_CELL[$b]=$cell B_LOG[$b]=$blog B_LIVE[$b]=1
    # Connection refusals while the probe waited for start-up are not the backend's fault.
    B_NERR0[$b]=$(nginx_errors "$cell/nginx/error.log")
}

warm_backend() {   # warm_backend BACKEND APP CONNS
    # Warm up until two warm-ups in a row agree within 25% on req/s, each
    # twice as long as the one before (at most WARMUP_MAX of them).
    # Backends that start processes on demand (wfastcgi: one per nginx
    # connection) need this: nginx drops the connections whose requests
    # are in flight when wrk stops, so a warm-up shorter than the
    # backend's start-up never reaches the steady state.
    local b=$1 a=$2 c=$3
    APP=$a URL=${B_URL[$b]}
    local cell=${B_CELL[$b]} w secs=$WARMUP prev=-1 cur settled=false
    for w in $(seq "$WARMUP_MAX"); do
        wrk_once "$c" "$secs" "$cell/warmup-c$c-$w.txt" || true
        cur=$(grep '^WRKJSON ' "$cell/warmup-c$c-$w.txt" | head -1 | sed 's/.*"requests":\([0-9]*\).*/\1/')
        cur=$(( ${cur:-0} / secs ))
        log "$b/$a: c=$c warm-up $w (${secs}s): $cur req/s"
        if [ "$cur" -gt 0 ] && [ "$prev" -gt 0 ] \
            && [ $((cur * 4)) -ge $((prev * 3)) ] && [ $((cur * 3)) -le $((prev * 4)) ]; then
            settled=true
            break
        fi
        prev=$cur
        secs=$((secs * 2))
    done
    [ "$settled" = true ] || log "$b/$a: c=$c warm-up did not settle; measuring anyway (marked in the report)"
    B_SETTLED[$b]=$settled
}

run_backend() {   # run_backend BACKEND APP CONNS RUN: one measured wrk run; a failure ends the backend
    local b=$1 a=$2 c=$3 r=$4
    APP=$a URL=${B_URL[$b]}
    local cell=${B_CELL[$b]} bpid=${B_PID[$b]} npid=${B_NGINX[$b]} blog=${B_LOG[$b]}
    local wout="$cell/wrk-c$c-r$r.txt" rout="$cell/rss-c$c-r$r.json" fout="$cell/nginx-c$c-r$r.json"
    # Memory and CPU of the backend's process tree, and CPU of nginx, sampled during the run.
    setsid "$PYTHON" "$LIB/rss.py" "$bpid" "$rout" 0.2 </dev/null &
    local spid=$!
    STARTED_PGIDS+=("$spid")
    setsid "$PYTHON" "$LIB/rss.py" "$npid" "$fout" 0.2 </dev/null &
    local fpid=$!
    STARTED_PGIDS+=("$fpid")
    local wrk_rc=0
    wrk_once "$c" "$DURATION" "$wout" || wrk_rc=$?
    stop_group "$spid"
    stop_group "$fpid"
    local alive=true
    kill -0 "$bpid" 2>/dev/null || alive=false
    local line
    line=$(grep '^WRKJSON ' "$wout" | head -1 | cut -d' ' -f2- || true)
    local nreq=0
    [ -n "$line" ] && nreq=$("$PYTHON" -c 'import json,sys; print(json.loads(sys.argv[1])["requests"])' "$line")
    if [ "$wrk_rc" != 0 ] || [ -z "$line" ] || [ "$alive" = false ] || [ "$nreq" = 0 ]; then
        local why="wrk exit $wrk_rc"
        [ "$nreq" = 0 ] && why="no request completed in ${DURATION}s"
        [ "$alive" = false ] && why="backend died during the run"
        log "$b/$a: c=$c run $r FAILED: $why"
        record_status "$b" "$a" failed "c=$c run $r: $why" "$wout" "$blog" "$cell/nginx/error.log"
        stop_group "$npid"; stop_group "$bpid"
        B_LIVE[$b]=0
        return 0
    fi
    local rss='{}' front='{}'
    [ -s "$rout" ] && rss=$(cat "$rout")
    [ -s "$fout" ] && front=$(cat "$fout")
    record "{\"backend\":\"$b\",\"app\":\"$a\",\"status\":\"ok\",\"conns\":$c,\"run\":$r,\"warmup_settled\":${B_SETTLED[$b]},\"wrk\":$line,\"mem\":$rss,\"front\":$front}"
    log "$b/$a: c=$c run $r: $("$PYTHON" -c 'import json,sys; w=json.loads(sys.argv[1]); print("%.0f req/s, p50 %.2f ms, p99 %.2f ms, errors %d" % (w["requests"]/w["duration_us"]*1e6, w["p50_us"]/1e3, w["p99_us"]/1e3, sum(v for k,v in w.items() if k.startswith("err_"))))' "$line")"
}

stop_backend() {   # stop_backend BACKEND APP: stop it and its nginx, and report nginx's complaints about it
    local b=$1 a=$2
    local cell=${B_CELL[$b]}
    stop_group "${B_NGINX[$b]}"
    stop_group "${B_PID[$b]}"
    B_LIVE[$b]=0
    # nginx's complaints about the upstream (resets, bad records) once it was serving are reported.
    local nerr
    nerr=$(( $(nginx_errors "$cell/nginx/error.log") - ${B_NERR0[$b]:-0} ))
    record_status "$b" "$a" done "nginx error-log lines: $nerr" "${B_LOG[$b]}" "$cell/nginx/error.log"
}

measure_app() {   # measure_app APP: every backend, interleaved (see above)
    local a=$1 b c r i
    local live=()
    for b in $BACKENDS; do
        start_backend "$b" "$a"
        if [ "${B_LIVE[$b]}" = 1 ]; then live+=("$b"); fi
    done
    [ "${#live[@]}" -gt 0 ] || return 0
    local n=${#live[@]} conns=$CONNS
    # The POST sizes are there to show per-request stalls (a delayed ACK costs 40 ms each), which one connection shows.
    case $a in post*k) conns=1 ;; esac
    for c in $conns; do
        for b in "${live[@]}"; do
            if [ "${B_LIVE[$b]}" = 1 ]; then warm_backend "$b" "$a" "$c"; fi
        done
        for r in $(seq "$RUNS"); do
            for i in $(seq 0 $((n - 1))); do
                b=${live[$(( (i + r - 1) % n ))]}
                if [ "${B_LIVE[$b]}" = 1 ]; then run_backend "$b" "$a" "$c" "$r"; fi
            done
        done
    done
    for b in "${live[@]}"; do
        if [ "${B_LIVE[$b]}" = 1 ]; then stop_backend "$b" "$a"; fi
    done
    return 0
}

# ---------------------------------------------------------------- main
mkdir -p "$WORK_DIR" "$OUT_DIR"
ensure_tools
ensure_venv
[ "$BUILD" = 1 ] && build_rust

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RUN_DIR="$WORK_DIR/runs/$STAMP"
mkdir -p "$RUN_DIR"
chmod 755 "$WORK_DIR" "$WORK_DIR/runs" "$RUN_DIR"   # nginx workers (nobody) reach the Unix sockets
RAW="$RUN_DIR/raw.jsonl"
: >"$RAW"

"$PYTHON" "$LIB/meta.py" \
    --venv "$VENV" --pyfcgi "${PYFCGI_BIN:-}" --ceiling "$CEILING_BIN" \
    --command "RUNS=$RUNS DURATION=$DURATION WARMUP=$WARMUP WARMUP_MAX=$WARMUP_MAX CONNS=\"$CONNS\" WRK_THREADS=$WRK_THREADS APPS=\"$APPS\" BACKENDS=\"$BACKENDS\" PYTHON=$PYTHON PYFCGI_BIN=${PYFCGI_BIN:-} CEILING_BIN=$CEILING_BIN $ORIG_CMD" \
    --settings "RUNS=$RUNS DURATION=$DURATION WARMUP=$WARMUP WARMUP_MAX=$WARMUP_MAX CONNS=$CONNS WRK_THREADS=$WRK_THREADS" \
    --apps "$APPS" --backends "$BACKENDS" >"$RUN_DIR/meta.json"

log "run dir $RUN_DIR; RUNS=$RUNS DURATION=${DURATION}s WARMUP=${WARMUP}s CONNS='$CONNS' APPS='$APPS'"
for a in $APPS; do
    measure_app "$a"
done

"$PYTHON" "$LIB/aggregate.py" "$RUN_DIR/meta.json" "$RAW" "$OUT_DIR/latest.md" "$OUT_DIR/latest.json"
log "wrote $OUT_DIR/latest.md and $OUT_DIR/latest.json (logs: $RUN_DIR)"
