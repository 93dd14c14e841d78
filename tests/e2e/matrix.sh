#!/usr/bin/env bash
# Runs the end-to-end tests with the example apps (tests/apps_e2e.rs) once per CPython minor version:
#
#   bash tests/e2e/matrix.sh 3.9 3.12 [-- TEST-ARGS...]
#
# For each version X.Y it finds the interpreter (PYTHON_X_Y if set, else pythonX.Y on PATH, else the newest
# $PYENV_ROOT/versions/X.Y.*), then runs
#   PYO3_PYTHON=<interpreter> CARGO_TARGET_DIR=<repo>/target/pyXY cargo test --test apps_e2e
# so pyfcgi and the test are built for that Python in a target directory of their own, and the test prepares its
# venv in target/pyXY/e2e-venv-X.Y (cached between runs). Every version runs even if one fails; the exit status
# is non-zero if any failed, and a summary line per version says how it went and how long it took.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
versions=()
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    *) versions+=("$1"); shift ;;
  esac
done
if [ ${#versions[@]} -eq 0 ]; then
  echo "usage: $0 X.Y [X.Y...] [-- TEST-ARGS...]" >&2
  exit 2
fi

find_python() {
  local version=$1 var="PYTHON_${1/./_}" candidate
  if [ -n "${!var:-}" ]; then
    echo "${!var}"
    return
  fi
  if candidate=$(command -v "python$version" 2>/dev/null) && "$candidate" -c '' 2>/dev/null; then
    echo "$candidate"
    return
  fi
  local pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
  candidate=$(ls -d "$pyenv_root"/versions/"$version".* 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$candidate" ] && [ -x "$candidate/bin/python$version" ]; then
    echo "$candidate/bin/python$version"
    return
  fi
  return 1
}

summary=()
failed=0
for version in "${versions[@]}"; do
  started=$(date +%s)
  if ! python=$(find_python "$version"); then
    echo "== Python $version: no interpreter found (set PYTHON_${version/./_})" >&2
    summary+=("Python $version: FAILED (no interpreter)")
    failed=1
    continue
  fi
  target="$root/target/py${version/./}"
  echo "== Python $version: $python, CARGO_TARGET_DIR=$target"
  if (cd "$root" && PYO3_PYTHON="$python" CARGO_TARGET_DIR="$target" cargo test --test apps_e2e --test asgi_e2e -- "$@"); then
    result=ok
  else
    result=FAILED
    failed=1
  fi
  summary+=("Python $version ($python): $result in $(($(date +%s) - started)) s")
done

echo "== apps_e2e matrix"
printf '%s\n' "${summary[@]}"
exit $failed
