"""Python-side helpers of pyfcgi's embedded interpreter.

Loaded by pyfcgi at start-up as the module ``_pyfcgi_runtime``. It holds what is clearest written in Python and
must match wfastcgi.py's behaviour exactly: how ``WSGI_HANDLER`` is resolved (and the error messages users search
for), and how error reports are formatted.
"""

import traceback


def _split_call(name):
    """Returns (name, should_call) for a segment that may end in '()'."""
    if name.endswith("()"):
        return name[:-2], True
    return name, False


def _walk(obj, names):
    for name, should_call in names:
        obj = getattr(obj, name)
        if should_call:
            obj = obj()
    return obj


def get_wsgi_handler(handler_name):
    """Resolves WSGI_HANDLER the way wfastcgi 3.0.0 does.

    ``pkg.module.attr.attr2`` imports as many leading names as import, the rest are attributes; a trailing ``()``
    on any segment calls it once; only ImportError makes it try a shorter module name; the last name is never
    imported as a module, so a bare module name fails. Also accepts gunicorn's ``module:attr`` form.
    """
    if not handler_name:
        raise Exception("WSGI_HANDLER env var must be set")

    if ":" in handler_name:
        module_name, _, attrs = handler_name.partition(":")
        try:
            handler = __import__(module_name, fromlist=["__name__"])
        except ImportError:
            raise ValueError(
                '"%s" could not be imported: %s' % (handler_name, traceback.format_exc())
            ) from None
        handler = _walk(handler, [_split_call(a) for a in attrs.split(".")])
        if handler is None:
            raise ValueError('"%s" could not be imported' % (handler_name,))
        return handler

    module_name, _, last = handler_name.rpartition(".")
    pending = [_split_call(last)]
    handler = None
    last_tb = ""
    while module_name:
        try:
            handler = __import__(module_name, fromlist=[pending[0][0]])
            last_tb = ""
            handler = _walk(handler, pending)
            break
        except ImportError:
            module_name, _, segment = module_name.rpartition(".")
            pending.insert(0, _split_call(segment))
            handler = None
            last_tb = ": " + traceback.format_exc()

    if handler is None:
        raise ValueError('"%s" could not be imported%s' % (handler_name, last_tb))
    return handler


def format_exception(exc, tb=None):
    """The full traceback text of an exception object. ``tb`` is the traceback the error was fetched with: before
    Python 3.12 an exception that propagated out of Python code into pyfcgi has no ``__traceback__`` of its own."""
    if tb is None:
        tb = exc.__traceback__
    return "".join(traceback.format_exception(type(exc), exc, tb))


def call_hint(handler, exc):
    """A hint for the classic WSGI_HANDLER mistake of calling the app itself, e.g. ``app.app()`` on Flask."""
    if isinstance(exc, TypeError) and "required positional argument" in str(exc):
        return (
            "WSGI_HANDLER ends in '()', so the object was called with no arguments. If it is the WSGI "
            "application itself (for example a Flask app), drop the '()'; keep it only for factories such "
            "as django.core.wsgi.get_wsgi_application()."
        )
    return None
