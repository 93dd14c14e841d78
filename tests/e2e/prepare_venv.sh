#!/usr/bin/env bash
# Prepares a virtual environment for the end-to-end tests with the example apps (tests/apps_e2e.rs):
#
#   bash tests/e2e/prepare_venv.sh PYTHON DIR [PYFCGI_BINARY]
#
# PYTHON is a CPython interpreter (path or command, e.g. /root/.pyenv/versions/3.12.1/bin/python3.12). DIR gets a
# venv of that Python with tests/e2e/requirements.txt installed from PyPI, and pyfcgi in DIR/bin/pyfcgi, where
# `pip install pyfcgi` would put it (pyfcgi finds the venv from there: pyvenv.cfg one directory up).
# PYFCGI_BINARY is copied in when given (the test harness passes the binary of the build under test); otherwise
# pyfcgi is built for PYTHON with cargo (debug profile, CARGO_TARGET_DIR target/pyXY unless set) and copied.
#
# Idempotent and cheap when nothing changed: the venv is reused while it is for the same Python version, and pip
# runs only when requirements.txt changed (its hash is stamped in DIR). Concurrent runs on one DIR take turns
# (flock on DIR.lock). Prints one `prepared ...` line naming the Python, the venv and the pyfcgi binary.
set -euo pipefail

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 PYTHON DIR [PYFCGI_BINARY]" >&2
  exit 2
fi
python=$1
dir=$2
binary=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
requirements="$here/requirements.txt"

python_path=$(command -v "$python" || true)
if [ -z "$python_path" ]; then
  echo "prepare_venv: Python interpreter '$python' not found" >&2
  exit 1
fi
version=$("$python_path" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9

venv_version() {
  sed -n 's/^version[ _a-z]*= *\([0-9]*\.[0-9]*\).*/\1/p' "$dir/pyvenv.cfg" 2>/dev/null | head -n 1
}

if [ ! -x "$dir/bin/python" ] || [ "$(venv_version)" != "$version" ]; then
  echo "prepare_venv: creating a Python $version venv in $dir"
  rm -rf "$dir"
  "$python_path" -m venv "$dir"
fi

stamp="$dir/.e2e-requirements.sha256"
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "prepare_venv: installing $requirements into $dir"
  rm -f "$stamp"
  "$dir/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$requirements"
  "$dir/bin/python" -m pip check --disable-pip-version-check
  echo "$want" >"$stamp"
fi

if [ -z "$binary" ]; then
  target=${CARGO_TARGET_DIR:-$root/target/py${version/./}}
  echo "prepare_venv: building pyfcgi for Python $version (PYO3_PYTHON=$python_path, CARGO_TARGET_DIR=$target)"
  (cd "$root" && PYO3_PYTHON="$python_path" CARGO_TARGET_DIR="$target" cargo build --bin pyfcgi)
  binary="$target/debug/pyfcgi"
fi
if [ ! -x "$binary" ]; then
  echo "prepare_venv: pyfcgi binary '$binary' does not exist" >&2
  exit 1
fi
# Copy then rename, so a pyfcgi still running from an earlier run keeps its (unlinked) file.
cp "$binary" "$dir/bin/pyfcgi.tmp.$$"
mv -f "$dir/bin/pyfcgi.tmp.$$" "$dir/bin/pyfcgi"

echo "prepared venv $dir: Python $("$dir/bin/python" -c 'import sys; print(sys.version.split()[0])') ($python_path), pyfcgi $dir/bin/pyfcgi (from $binary)"
