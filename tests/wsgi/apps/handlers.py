"""WSGI_HANDLER resolution fixtures: plain apps, factories (recorded when called), None, a callable object."""

from recorder import record


def _app(name):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [name.encode()]

    return app


app = _app("handlers.app")


def factory():
    record("factory", "factory")
    return _app("made by factory")


def create_app():
    record("factory", "create_app")
    return _app("made by create_app")


none_app = None


class CallableApp:
    def __call__(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"callable object"]


callable_app = CallableApp()
