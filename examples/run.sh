#!/usr/bin/env bash
# Serves an example site through real nginx and pyfcgi, installing what it needs:
#   bash examples/run.sh [flask|django|fastapi] [PORT]
# Then open http://127.0.0.1:PORT/ (default 8080). Ctrl-C stops everything.
#
# Steps: nginx from the distribution's packages, a virtual environment with the app's requirements, pyfcgi
# built against that environment's Python and copied into the venv's bin/ (where pip would put it), pyfcgi on
# a Unix socket, nginx in front with the example's nginx.conf settings.
set -euo pipefail

app=${1:-flask}
port=${2:-8080}
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
case "$app" in
  flask) handler="app:app"; requirements="flask" ;;
  django) handler="django.core.wsgi.get_wsgi_application()"; requirements="django"; export DJANGO_SETTINGS_MODULE=mysite.settings ;;
  # ASGI: pyfcgi recognises the FastAPI app (async def __call__) and runs it on one event loop.
  fastapi) handler="app:app"; requirements="fastapi python-multipart" ;;
  *) echo "usage: $0 [flask|django|fastapi] [PORT]" >&2; exit 2 ;;
esac
site="$root/examples/${app}_app"
work="$root/.work/example-$app"
mkdir -p "$work"

if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "== installing nginx"
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx-light
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

venv="$work/venv"
if [ ! -x "$venv/bin/python" ]; then
  echo "== creating $venv"
  "$python" -m venv "$venv"
fi
"$venv/bin/pip" install -q $requirements

echo "== building pyfcgi for $("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])')"
base_python=$("$venv/bin/python" -c 'import sys; print(sys._base_executable)')
(cd "$root" && PYO3_PYTHON="$base_python" CARGO_TARGET_DIR="$work/target" cargo build --release -q)
cp "$work/target/release/pyfcgi" "$venv/bin/pyfcgi"

socket="$work/pyfcgi.sock"
cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
user root;
events { worker_connections 256; }
http {
    access_log $work/nginx-access.log;
    client_body_temp_path $work/client_body;
    fastcgi_temp_path $work/fastcgi_temp;
    proxy_temp_path $work/proxy_temp;
    uwsgi_temp_path $work/uwsgi_temp;
    scgi_temp_path $work/scgi_temp;
    include /etc/nginx/mime.types;
    upstream pyfcgi { server unix:$socket; keepalive 16; }
    server {
        listen 127.0.0.1:$port;
        client_max_body_size 64m;
        location /static/ { alias $site/static/; }
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

cleanup() { kill "${pyfcgi_pid:-}" "${nginx_pid:-}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

"$venv/bin/pyfcgi" --bind "unix:$socket" --socket-mode 666 --app "$handler" --app-root "$site" &
pyfcgi_pid=$!
"$nginx_bin" -c "$work/nginx.conf" &
nginx_pid=$!
echo "== serving examples/${app}_app on http://127.0.0.1:$port/ (pyfcgi pid $pyfcgi_pid, nginx pid $nginx_pid); Ctrl-C stops"
wait -n "$pyfcgi_pid" "$nginx_pid"
