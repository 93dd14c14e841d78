#!/usr/bin/env bash
# pyfcgi's reliability suite, one command: soak (RSS and descriptors sampled), abort storms, the app-misbehaviour
# matrix, malformed-record floods, idle and slow clients, connection bursts; real nginx in front where a front
# server matters, raw FastCGI (tests/wsgi/fcgi_client.py) where the protocol edge is the point. Loopback only.
#
#   bash reliability/run.sh [--short] [--only CHECK,...]
#
# --short is CI's form (about a minute: smaller counts, cases tied to an open defect skipped and listed).
# The binary is $PYFCGI_BIN, by default target/debug/pyfcgi, built here if missing. The results table goes to
# target/reliability/latest.md (copy it into RELIABILITY.md after a full run). Exits non-zero on any FAIL.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nginx >/dev/null || { echo "nginx not found (Debian: apt-get install nginx-light)" >&2; exit 2; }
if [[ -z "${PYFCGI_BIN:-}" ]]; then
    cargo build -q
    export PYFCGI_BIN=$PWD/target/debug/pyfcgi
fi
mkdir -p target/reliability
exec python3 reliability/suite.py --markdown target/reliability/latest.md "$@"
