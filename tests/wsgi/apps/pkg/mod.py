"""For `pkg.mod.holder.inner.app`: as many leading names as import are modules, the rest are attributes."""

from types import SimpleNamespace


def _app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"pkg.mod attribute chain"]


holder = SimpleNamespace(inner=SimpleNamespace(app=_app))
