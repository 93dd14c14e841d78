#!/usr/bin/env bash
# Tests the Linux wheels as users get them: installed by pip into fresh venvs, then run.
#
#   bash tests/wheels/run.sh --python 3.9 --python 3.11 [--build]
#
# For each minor X.Y (its wheel in dist/, built first with --build by python/build-wheels.sh):
#   - the wheel's binaries carry no RPATH/RUNPATH, need no libpython and nothing above GLIBC_2.17;
#   - it installs into a fresh venv of that Python; `pyfcgi --version` and `python -m pyfcgi --version` name the
#     minor; pyfcgi.find_pyfcgi_bin() is the venv's bin/pyfcgi; `pyfcgi check` on a hello app says OK;
#   - the installed pyfcgi serves examples/flask_app through real nginx (a page, a streamed response, an upload);
#   - pip refuses the wheel of another minor; `pip uninstall` removes every file it installed.
# With 3.11 also (Debian's own Python is 3.11):
#   - a venv made from Debian's /usr/bin/python3 (with the libpython3.11 package) works;
#   - a venv whose base Python has no shared libpython fails with the explanation, to WSGI_LOG or stderr, exit 3.
#     No Python on this machine is built that way, so one is made: Debian's python3.11 executable (which links
#     libpython statically) in a prefix of its own whose sysconfig says Py_ENABLE_SHARED = 0, exactly what a
#     `--disable-shared` build looks like; likewise one whose shared library is not installed (Debian without
#     libpython3.11), by naming a soname that does not exist;
#   - a venv made for another minor, and a venv whose base Python is gone, are refused with the fix.
# Ends with `wheels: N passed, M failed`; the exit status is non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DIST=${PYFCGI_DIST:-$ROOT/dist}
W=$ROOT/target/wheels-test
minors=()
build=0
while [ $# -gt 0 ]; do
  case $1 in
    --python) minors+=("$2"); shift 2 ;;
    --build) build=1; shift ;;
    *) echo "usage: $0 --python X.Y [--python X.Y ...] [--build]" >&2; exit 2 ;;
  esac
done
[ ${#minors[@]} -gt 0 ] || { echo "usage: $0 --python X.Y [--python X.Y ...] [--build]" >&2; exit 2; }

passed=0
failed=0
failures=()
ok() { passed=$((passed + 1)); echo "PASS $1"; }
bad() { failed=$((failed + 1)); failures+=("$1"); echo "FAIL $1"; [ -n "${2:-}" ] && sed 's/^/    /' <<<"$2" | tail -30; }
# check NAME COMMAND...: passes when the command succeeds; its output is shown when it does not.
check() {
  local name=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$name"; else bad "$name" "$out"; fi
}

python_for() {
  local minor=$1 candidate
  for candidate in /root/.pyenv/versions/"$minor".*/bin/python"$minor" "$(command -v "python$minor" || true)"; do
    if [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
  done
  return 1
}
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
wheel_for() { echo "$DIST/pyfcgi-$version-cp${1/./}-cp${1/./}-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"; }

if [ $build = 1 ]; then
  args=()
  for minor in "${minors[@]}"; do args+=(--python "$minor"); done
  bash python/build-wheels.sh --platform linux "${args[@]}" || { echo "wheels: 0 passed, 1 failed (build)"; exit 1; }
fi

rm -rf "$W" && mkdir -p "$W"
APP=$W/hello
mkdir -p "$APP"
cat >"$APP/hello.py" <<'PY'
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello\n"]
PY
head -c 3000000 /dev/urandom >"$W/upload.bin"
upload_sha=$(sha256sum "$W/upload.bin" | cut -d' ' -f1)
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# binaries WHEEL: RPATH/RUNPATH, libpython and glibc versions of every ELF file in the wheel's scripts folder.
binaries() {
  local wheel=$1 dir=$W/unpacked-${1##*/} f problems=""
  rm -rf "$dir" && mkdir -p "$dir" && (cd "$dir" && python3 -m zipfile -e "$wheel" .) || return 1
  local files=("$dir"/pyfcgi-*.data/scripts/*)
  [ ${#files[@]} -eq 2 ] || problems+="expected pyfcgi and libpyfcgi_core.so, found: ${files[*]##*/}"$'\n'
  for f in "${files[@]}"; do
    local dynamic glibc
    dynamic=$(readelf -d "$f") || { problems+="${f##*/}: not an ELF file"$'\n'; continue; }
    grep -Eq 'R(UN)?PATH' <<<"$dynamic" && problems+="${f##*/}: $(grep -E 'R(UN)?PATH' <<<"$dynamic")"$'\n'
    grep -q 'libpython' <<<"$dynamic" && problems+="${f##*/}: needs $(grep libpython <<<"$dynamic")"$'\n'
    glibc=$(objdump -T "$f" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
    [ -n "$glibc" ] || problems+="${f##*/}: no GLIBC symbol versions found"$'\n'
    [ "$(printf '%s\n' "$glibc" GLIBC_2.17 | sort -V | tail -1)" = GLIBC_2.17 ] || problems+="${f##*/}: needs $glibc"$'\n'
    echo "${f##*/}: highest ${glibc}, NEEDED: $(grep NEEDED <<<"$dynamic" | grep -o '\[.*\]' | tr '\n' ' ')"
  done
  objdump -T "$dir"/pyfcgi-*.data/scripts/libpyfcgi_core.so | grep -q pyfcgi_core_main_v1 || problems+="core: no pyfcgi_core_main_v1 export"$'\n'
  [ -z "$problems" ] || { printf '%s' "$problems"; return 1; }
}

# serve_flask VENV LABEL: the Flask example behind nginx, served by VENV's installed pyfcgi.
serve_flask() {
  local venv=$1 label=$2 work=$W/nginx-$2 port sock body timing first total
  rm -rf "$work" && mkdir -p "$work"
  port=$(free_port)
  sock=$work/pyfcgi.sock
  cat >"$work/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
user root;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $work/client_body;
    fastcgi_temp_path $work/fastcgi_temp;
    proxy_temp_path $work/proxy_temp;
    uwsgi_temp_path $work/uwsgi_temp;
    scgi_temp_path $work/scgi_temp;
    upstream pyfcgi { server unix:$sock; keepalive 4; }
    server {
        listen 127.0.0.1:$port;
        client_max_body_size 64m;
        location / {
            fastcgi_pass pyfcgi;
            fastcgi_keep_conn on;
            fastcgi_buffering off;
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_NAME "";
            fastcgi_param PATH_INFO \$uri;
        }
    }
}
NGINX
  "$venv/bin/pyfcgi" --bind "unix:$sock" --socket-mode 666 --app app:app --app-root "$ROOT/examples/flask_app" \
    >"$work/pyfcgi.log" 2>&1 &
  local pyfcgi_pid=$!
  /usr/sbin/nginx -c "$work/nginx.conf" >"$work/nginx.out" 2>&1 &
  local nginx_pid=$!
  local i
  for i in $(seq 100); do
    [ -S "$sock" ] && curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.2
  done
  local url=http://127.0.0.1:$port
  body=$(curl -s --max-time 20 "$url/")
  if [ "$body" = "Hello from Flask on pyfcgi" ]; then ok "$label: GET / through nginx"; else
    bad "$label: GET / through nginx (got '$body')" "$(cat "$work/pyfcgi.log" "$work/nginx-error.log" 2>/dev/null)"; fi
  # Streamed: 4 events 0.5 s apart; the first bytes must arrive well before the last.
  timing=$(curl -s --max-time 30 -o "$work/stream.txt" -w '%{time_starttransfer} %{time_total}' "$url/stream?n=4&delay=0.5")
  read -r first total <<<"$timing"
  if [ "$(grep -c '^event ' "$work/stream.txt")" = 4 ] && python3 -c "import sys; sys.exit(not float('$total') - float('$first') > 1.0)"; then
    ok "$label: streamed response (first byte ${first}s, last ${total}s)"
  else
    bad "$label: streamed response (first byte ${first}s, last ${total}s)" "$(cat "$work/stream.txt")"
  fi
  body=$(curl -s --max-time 60 -F "file=@$W/upload.bin" "$url/upload")
  if grep -q "\"sha256\":\"$upload_sha\"" <<<"${body// /}" && grep -q '"size":3000000' <<<"${body// /}"; then
    ok "$label: 3 MB upload, digest matches"
  else
    bad "$label: 3 MB upload (got '$body')" "$(tail -5 "$work/pyfcgi.log")"
  fi
  kill "$pyfcgi_pid" "$nginx_pid" 2>/dev/null
  wait "$pyfcgi_pid" "$nginx_pid" 2>/dev/null
}

# installed_files VENV: what pip's RECORD lists, as paths.
installed_files() { "$1/bin/python" - <<'PY'
import importlib.metadata as m
d = m.distribution("pyfcgi")
for f in d.files:
    print(d.locate_file(f))
PY
}

for minor in "${minors[@]}"; do
  echo
  echo "== CPython $minor"
  wheel=$(wheel_for "$minor")
  python=$(python_for "$minor") || { bad "$minor: no CPython $minor on this machine"; continue; }
  [ -f "$wheel" ] || { bad "$minor: no wheel $wheel (run with --build)"; continue; }
  check "$minor: wheel binaries: no RUNPATH, no libpython, GLIBC <= 2.17" binaries "$wheel"
  venv=$W/venv-$minor
  "$python" -m venv "$venv"
  check "$minor: pip installs the wheel into a fresh venv" "$venv/bin/pip" install -q --no-index "$wheel"
  out=$("$venv/bin/pyfcgi" --version 2>&1)
  [ "$out" = "pyfcgi $version (for Python $minor)" ] && ok "$minor: pyfcgi --version: $out" || bad "$minor: pyfcgi --version" "$out"
  out=$("$venv/bin/python" -m pyfcgi --version 2>&1)
  [ "$out" = "pyfcgi $version (for Python $minor)" ] && ok "$minor: python -m pyfcgi --version" || bad "$minor: python -m pyfcgi --version" "$out"
  out=$("$venv/bin/python" -c 'import pyfcgi; print(pyfcgi.find_pyfcgi_bin())' 2>&1)
  [ "$out" = "$venv/bin/pyfcgi" ] && ok "$minor: find_pyfcgi_bin() is the venv's bin/pyfcgi" || bad "$minor: find_pyfcgi_bin()" "$out"
  out=$("$venv/bin/pyfcgi" check --app-root "$APP" --app hello.app 2>&1)
  if [ $? = 0 ] && grep -q '^OK: the application imports' <<<"$out" && grep -q "found by \`home\` in $venv/pyvenv.cfg" <<<"$out"; then
    ok "$minor: pyfcgi check on a hello app says OK"
  else
    bad "$minor: pyfcgi check on a hello app" "$out"
  fi
  check "$minor: Flask installs into the venv" "$venv/bin/pip" install -q flask
  serve_flask "$venv" "$minor"
  other=""
  for m in "${minors[@]}"; do [ "$m" != "$minor" ] && [ -f "$(wheel_for "$m")" ] && other=$m && break; done
  if [ -n "$other" ]; then
    out=$("$venv/bin/pip" install --no-index "$(wheel_for "$other")" 2>&1)
    if [ $? != 0 ] && grep -q "is not a supported wheel on this platform" <<<"$out"; then
      ok "$minor: pip refuses the cp${other/./} wheel"
    else
      bad "$minor: pip refuses the cp${other/./} wheel" "$out"
    fi
  else
    echo "NOT RUN $minor: no wheel of another minor in $DIST to try (not counted)"
  fi
  mapfile -t files < <(installed_files "$venv")
  "$venv/bin/pip" uninstall -q -y pyfcgi
  left=()
  for f in "${files[@]}"; do [ -e "$f" ] && left+=("$f"); done
  if [ ${#files[@]} -ge 4 ] && [ ${#left[@]} = 0 ] && [ ! -e "$venv/bin/libpyfcgi_core.so" ] && [ ! -e "$venv/bin/pyfcgi" ]; then
    ok "$minor: pip uninstall removes all ${#files[@]} installed files"
  else
    bad "$minor: pip uninstall leaves ${left[*]:-nothing, but RECORD lists ${#files[@]} files}"
  fi
done

# Every launcher failure below must exit 3 and say the summary, the detail and the fix.
expect_failure() { # NAME LOGFILE COMMAND... ; then grep patterns from $patterns
  local name=$1 log=$2 rc out
  shift 2
  rm -f "$log"
  out=$("$@" 2>&1)
  rc=$?
  local text=$out
  [ -f "$log" ] && text=$(cat "$log")
  local missing=""
  for p in "${patterns[@]}"; do grep -qF -- "$p" <<<"$text" || missing+="missing: $p"$'\n'; done
  if [ $rc = 3 ] && [ -z "$missing" ] && grep -q 'ERROR pyfcgi launcher (pid [0-9]*): cannot start' <<<"$text"; then
    ok "$name"
  else
    bad "$name (exit $rc)" "$missing$text"
  fi
}

if [[ " ${minors[*]} " == *" 3.11 "* ]] && [ -f "$(wheel_for 3.11)" ]; then
  echo
  echo "== CPython 3.11 of Debian, and Pythons without a usable shared library"
  wheel=$(wheel_for 3.11)
  deb=$W/venv-debian
  if /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    /usr/bin/python3 -m venv "$deb" && "$deb/bin/pip" install -q --no-index "$wheel"
    out=$("$deb/bin/pyfcgi" check --app-root "$APP" --app hello.app 2>&1)
    if [ $? = 0 ] && grep -q '^OK: the application imports' <<<"$out" && grep -q 'libpython3.11.so.1.0 (found by .*sysconfig LIBDIR' <<<"$out"; then
      ok "debian: a venv of /usr/bin/python3 (libpython3.11 installed) runs check OK, library from sysconfig LIBDIR"
    else
      bad "debian: a venv of /usr/bin/python3" "$out"
    fi
    check "debian: Flask installs into the venv" "$deb/bin/pip" install -q flask
    serve_flask "$deb" debian
  else
    bad "debian: /usr/bin/python3 is not Python 3.11"
  fi

  # fake_prefix DIR SHARED SONAME: Debian's python3.11 in a prefix of its own, its sysconfig edited.
  fake_prefix() {
    local prefix=$1 entry
    mkdir -p "$prefix/bin" "$prefix/lib/python3.11"
    cp /usr/bin/python3.11 "$prefix/bin/python3.11"
    for entry in /usr/lib/python3.11/*; do ln -s "$entry" "$prefix/lib/python3.11/"; done
    rm "$prefix/lib/python3.11/_sysconfigdata__x86_64-linux-gnu.py"
    sed -e "s/'Py_ENABLE_SHARED': 1,/'Py_ENABLE_SHARED': $2,/" -e "s/'INSTSONAME': 'libpython3.11.so.1.0',/'INSTSONAME': '$3',/" \
      /usr/lib/python3.11/_sysconfigdata__x86_64-linux-gnu.py >"$prefix/lib/python3.11/_sysconfigdata__x86_64-linux-gnu.py"
  }
  # venv_over PREFIX VENV: a venv of that Python with the 3.11 wheel, installed by pip from another venv.
  venv_over() {
    "$1/bin/python3.11" -m venv --without-pip "$2" && "$deb/bin/pip" --python "$2/bin/python" install -q --no-index "$wheel"
  }
  static=$W/static-python
  fake_prefix "$static" 0 libpython3.11.so.1.0
  shared=$("$static/bin/python3.11" -c 'import sysconfig; print(sysconfig.get_config_var("Py_ENABLE_SHARED"))')
  [ ! -e "$static/lib/libpython3.11.so.1.0" ] && [ "$shared" = 0 ] && ok "static: the made Python reports Py_ENABLE_SHARED = 0 and has no lib/libpython" ||
    bad "static: the made Python (Py_ENABLE_SHARED = $shared)"
  venv_over "$static" "$W/venv-static" || bad "static: install the wheel"
  patterns=("$static/bin/python3.11 was built without a shared library (sysconfig Py_ENABLE_SHARED is 0)"
    "home = $static/bin" "PYTHON_CONFIGURE_OPTS=--enable-shared")
  expect_failure "static: exit 3 and the explanation on stderr" /nonexistent "$W/venv-static/bin/pyfcgi" check --app-root "$APP" --app hello.app
  expect_failure "static: exit 3 and the explanation in WSGI_LOG" "$W/static.log" env WSGI_LOG="$W/static.log" "$W/venv-static/bin/pyfcgi"
  out=$(WSGI_LOG="$W/static2.log" "$W/venv-static/bin/pyfcgi" 2>&1 </dev/null)
  [ -z "$out" ] && ok "static: with WSGI_LOG set nothing goes to stderr" || bad "static: with WSGI_LOG set, stderr got" "$out"

  nolib=$W/python-without-libpython-package
  fake_prefix "$nolib" 1 libpython3.11-not-installed.so.1.0
  venv_over "$nolib" "$W/venv-nolib" || bad "no-lib: install the wheel"
  patterns=("its shared library libpython3.11-not-installed.so.1.0 is not installed" "apt install libpython3.11")
  expect_failure "no-lib: Debian without the libpython3.11 package: exit 3, says apt install libpython3.11" /nonexistent "$W/venv-nolib/bin/pyfcgi" check

  other=$(python_for 3.12 || python_for 3.10 || true)
  if [ -n "$other" ]; then
    other_minor=$("$other" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    "$other" -m venv --without-pip "$W/venv-other"
    patterns=("the virtual environment $W/venv-other (--venv) is for Python $other_minor, but this pyfcgi is built for Python 3.11"
      "pip install --force-reinstall pyfcgi")
    expect_failure "other minor: --venv of a $other_minor venv is refused" /nonexistent "$deb/bin/pyfcgi" check --venv "$W/venv-other"
  else
    bad "other minor: no CPython 3.12 or 3.10 here"
  fi
  gone=$W/venv-gone
  "$static/bin/python3.11" -m venv --without-pip "$gone" && cp "$deb/bin/pyfcgi" "$deb/bin/libpyfcgi_core.so" "$gone/bin/"
  sed -i "s|^home = .*|home = $W/removed-python/bin|" "$gone/pyvenv.cfg"
  patterns=("home = $W/removed-python/bin" "that folder does not exist" "How to fix: reinstall Python 3.11 in $W/removed-python/bin")
  expect_failure "gone: a venv whose base Python was removed" /nonexistent "$gone/bin/pyfcgi" check
else
  echo "NOT RUN: the Debian and no-shared-libpython scenarios need --python 3.11 (not counted)"
fi

echo
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "wheels: $passed passed, $failed failed"
[ "$failed" = 0 ]
