"""A 1 MiB response streamed as 16 chunks of 64 KiB from a generator.

No Content-Length header: the server has to stream (chunked to the client
by nginx).
"""

CHUNK = b"x" * (64 * 1024)
CHUNKS = 16  # 16 * 64 KiB = 1 MiB


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])

    def body():
        for _ in range(CHUNKS):
            yield CHUNK

    return body()
