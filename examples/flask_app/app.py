"""A small Flask site used as pyfcgi's example and in its end-to-end tests.

Routes cover what deployments need: a page, a form with a CSRF-style token, a file upload read as a stream,
a streamed response, an error, JSON echo of request details, and static files (served by the front server).
"""

import hashlib
import hmac
import os
import time

from flask import Flask, Response, abort, jsonify, request, stream_with_context

app = Flask(__name__)
app.config["SECRET_KEY"] = os.environ.get("FLASK_SECRET_KEY", "example-only-secret")
app.config["MAX_CONTENT_LENGTH"] = 64 * 1024 * 1024


def _token():
    return hmac.new(app.config["SECRET_KEY"].encode(), b"form", hashlib.sha256).hexdigest()


@app.get("/")
def index():
    return "Hello from Flask on pyfcgi\n"


@app.get("/form")
def form():
    return (
        '<form method="post" action="/form">'
        f'<input type="hidden" name="csrf_token" value="{_token()}">'
        '<input name="name"><button>Send</button></form>'
    )


@app.post("/form")
def form_post():
    if not hmac.compare_digest(request.form.get("csrf_token", ""), _token()):
        abort(400, "bad CSRF token")
    return f"Hello, {request.form.get('name', '')}!\n"


@app.post("/upload")
def upload():
    digest = hashlib.sha256()
    size = 0
    stream = request.files["file"].stream if "file" in request.files else request.stream
    while True:
        chunk = stream.read(64 * 1024)
        if not chunk:
            break
        digest.update(chunk)
        size += len(chunk)
    return jsonify(size=size, sha256=digest.hexdigest())


@app.get("/stream")
def stream():
    count = int(request.args.get("n", 5))
    delay = float(request.args.get("delay", 0.2))

    @stream_with_context
    def generate():
        for i in range(count):
            yield f"event {i} at {time.time():.3f}\n"
            time.sleep(delay)

    return Response(generate(), mimetype="text/plain")


@app.get("/echo")
def echo():
    return jsonify(
        path=request.path,
        script_root=request.script_root,
        args=request.args.to_dict(flat=False),
        scheme=request.scheme,
        method=request.method,
    )


@app.get("/error")
def error():
    raise RuntimeError("this page fails on purpose")
