"""A module that fails while being imported (WSGI_HANDLER=import_error.app)."""

print("import_error.py is being imported")
raise RuntimeError("import-time failure in import_error.py")


def app(environ, start_response):  # never reached
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"unreachable"]
