#!/usr/bin/env bash
# Builds the pyfcgi wheels into dist/ and writes dist/SHA256SUMS: one wheel per CPython minor version and
# platform, `manylinux2014_x86_64` (glibc 2.17, linked by zig from PyPI through maturin) and `win_amd64`
# (cross-built with Debian's mingw-w64). Each wheel holds the launcher (`pyfcgi` / `pyfcgi.exe`, launcher/) and the
# core built for that minor (`libpyfcgi_core.so` / `pyfcgi_core.dll`, core/), both in its scripts folder.
#
#   bash python/build-wheels.sh                        every minor (3.9 to 3.13) for both platforms
#   bash python/build-wheels.sh --python 3.11 --platform linux   a subset (both options repeatable)
#
# Installs what it needs: maturin and ziglang (pinned, into target/wheel-tools), the Rust targets, and for
# Windows the mingw-w64 compiler (apt). Linux wheels need a CPython of each minor (pyenv's, or pythonX.Y on
# PATH); Windows wheels need none. Environment: PYFCGI_WHEEL_TARGET_DIR (cargo's target folder, default
# target/wheels-build), PYFCGI_DIST (default dist).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ALL_MINORS="3.9 3.10 3.11 3.12 3.13"
MATURIN_VERSION=1.16.0
ZIGLANG_VERSION=0.17.1

minors=()
platforms=()
while [ $# -gt 0 ]; do
  case $1 in
    --python) minors+=("${2:?--python needs a version such as 3.11}"); shift 2 ;;
    --python=*) minors+=("${1#*=}"); shift ;;
    --platform) platforms+=("${2:?--platform needs linux or windows}"); shift 2 ;;
    --platform=*) platforms+=("${1#*=}"); shift ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-wheels.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#minors[@]} -gt 0 ] || read -r -a minors <<<"$ALL_MINORS"
[ ${#platforms[@]} -gt 0 ] || platforms=(linux windows)
for minor in "${minors[@]}"; do
  [[ $minor =~ ^3\.[0-9]+$ ]] || { echo "build-wheels.sh: --python $minor is not a version such as 3.11" >&2; exit 2; }
done
for platform in "${platforms[@]}"; do
  case $platform in linux | windows) ;; *) echo "build-wheels.sh: --platform is linux or windows, not $platform" >&2; exit 2 ;; esac
done

export CARGO_TARGET_DIR=${PYFCGI_WHEEL_TARGET_DIR:-$ROOT/target/wheels-build}
DIST=${PYFCGI_DIST:-$ROOT/dist}
TOOLS=$ROOT/target/wheel-tools
DATA=$ROOT/target/wheel-data/pyfcgi.data/scripts   # pyproject.toml's [tool.maturin] data
mkdir -p "$DIST"

python_for() { # the CPython of a minor version: pyenv's, else pythonX.Y on PATH
  local minor=$1 candidate
  for candidate in /root/.pyenv/versions/"$minor".*/bin/python"$minor" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$minor".*/bin/python"$minor" \
    "$(command -v "python$minor" || true)"; do
    if [ -x "$candidate" ]; then echo "$candidate"; return 0; fi
  done
  return 1
}

# ---- tools ---------------------------------------------------------------------------------------------------
if ! "$TOOLS/bin/maturin" --version 2>/dev/null | grep -q "$MATURIN_VERSION" ||
  ! "$TOOLS/bin/python" -c "import ziglang" 2>/dev/null; then
  echo "-- installing maturin $MATURIN_VERSION and ziglang $ZIGLANG_VERSION into $TOOLS"
  tool_python=$(command -v python3)
  "$tool_python" -m venv --clear "$TOOLS"
  "$TOOLS/bin/python" -m pip install -q --disable-pip-version-check "maturin==$MATURIN_VERSION" "ziglang==$ZIGLANG_VERSION"
fi
MATURIN=$TOOLS/bin/maturin
export PATH=$TOOLS/bin:$PATH   # maturin finds zig as `python -m ziglang` through PATH
if [[ " ${platforms[*]} " == *" windows "* ]] && ! command -v x86_64-w64-mingw32-gcc >/dev/null; then
  echo "-- installing the mingw-w64 cross compiler"
  apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends gcc-mingw-w64-x86-64 >/dev/null
fi
for platform in "${platforms[@]}"; do
  case $platform in
    linux) rustup target add x86_64-unknown-linux-gnu >/dev/null 2>&1 || true ;;
    windows) rustup target add x86_64-pc-windows-gnu >/dev/null ;;
  esac
done

# The core is built by cargo, not maturin (maturin builds one package: the launcher), and linked by the same zig
# wrapper maturin uses for --zig, so it has the same glibc floor as the launcher.
ZIGCC=$TOOLS/zigcc-x86_64-linux-gnu.2.17.sh
cat >"$ZIGCC" <<SH
#!/bin/sh
export CARGO_ZIGBUILD_ZIG_COMMAND="$TOOLS/bin/python" CARGO_ZIGBUILD_ZIG_COMMAND_ARGS='-m ziglang'
exec "$MATURIN" zig cc -- -g -fno-sanitize=all -target x86_64-linux-gnu.2.17 "\$@"
SH
chmod +x "$ZIGCC"

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
built=()
started=$SECONDS

build_one() { # platform minor
  local platform=$1 minor=$2 tag=cp${2/./} t0=$SECONDS python target core
  rm -rf "$DATA" && mkdir -p "$DATA"
  # No debug info and no symbol table in the shipped core (its exported entry point stays).
  local profile=(CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_STRIP=symbols)
  if [ "$platform" = linux ]; then
    target=x86_64-unknown-linux-gnu
    python=$(python_for "$minor") || { echo "build-wheels.sh: no CPython $minor found for the Linux wheel" >&2; return 1; }
    echo "-- $tag linux: core (PYO3_PYTHON=$python)"
    env "${profile[@]}" PYO3_PYTHON="$python" PYO3_BUILD_EXTENSION_MODULE=1 \
      CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER="$ZIGCC" \
      cargo build -q --release --locked -p pyfcgi-core --target "$target"
    cp "$CARGO_TARGET_DIR/$target/release/libpyfcgi_core.so" "$DATA/"
    echo "-- $tag linux: launcher and wheel (maturin --zig, manylinux2014)"
    PYO3_PYTHON="$python" PYO3_BUILD_EXTENSION_MODULE=1 "$MATURIN" build -q --release --locked --zig \
      --compatibility manylinux2014 --target "$target" -i "$python" --out "$DIST"
    built+=("$DIST/pyfcgi-$version-$tag-$tag-manylinux2014_x86_64.manylinux_2_17_x86_64.whl")
  else
    target=x86_64-pc-windows-gnu
    echo "-- $tag windows: core (PYO3_CROSS_PYTHON_VERSION=$minor)"
    env "${profile[@]}" PYO3_CROSS_PYTHON_VERSION="$minor" cargo build -q --release --locked -p pyfcgi-core --target "$target"
    cp "$CARGO_TARGET_DIR/$target/release/pyfcgi_core.dll" "$DATA/"
    echo "-- $tag windows: launcher and wheel (maturin, cross)"
    PYO3_CROSS_PYTHON_VERSION="$minor" "$MATURIN" build -q --release --locked --target "$target" -i "python$minor" --out "$DIST"
    built+=("$DIST/pyfcgi-$version-$tag-$tag-win_amd64.whl")
  fi
  rm -rf "$DATA"
  [ -f "${built[-1]}" ] || { echo "build-wheels.sh: maturin did not write ${built[-1]}" >&2; ls "$DIST" >&2; return 1; }
  echo "-- $tag $platform: ${built[-1]##*/} ($((SECONDS - t0)) s)"
}

for platform in "${platforms[@]}"; do
  for minor in "${minors[@]}"; do
    build_one "$platform" "$minor"
  done
done

(cd "$DIST" && sha256sum -- *.whl >SHA256SUMS)
echo "== ${#built[@]} wheel(s) in $((SECONDS - started)) s; $DIST/SHA256SUMS lists every wheel in $DIST:"
for wheel in "${built[@]}"; do echo "   ${wheel##*/}"; done
