"""Reads the whole request body (a 1 MiB POST in the benchmark; 8-256 KiB in
the postNk cells) in 64 KiB reads and answers with its length in bytes."""


def app(environ, start_response):
    stream = environ["wsgi.input"]
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    total = 0
    while remaining > 0:
        chunk = stream.read(min(remaining, 64 * 1024))
        if not chunk:
            break
        total += len(chunk)
        remaining -= len(chunk)
    body = b"%d\n" % total
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]
