"""ASGI helpers of pyfcgi's embedded interpreter (loaded as the module ``_pyfcgi_asgi``).

What is clearest in Python lives here: deciding whether a loaded application is ASGI 3 (the way uvicorn's
``--interface auto`` does), creating the event loop (uvloop when installed) and running it on its own thread,
and the ASGI lifespan protocol (uvicorn's ``auto`` behaviour: an application that raises before answering
``lifespan.startup`` does not support lifespan, and keeps working without it). The per-request bridge
(scope, ``receive``, ``send``) is in Rust (``src/asgi``).
"""

import asyncio
import functools
import inspect
import threading
import traceback


def _is_coroutine_function(obj):
    while isinstance(obj, functools.partial):
        obj = obj.func
    if inspect.iscoroutinefunction(obj):
        return True
    # asgiref.sync.markcoroutinefunction before Python 3.12 (and asyncio.coroutine-style markers).
    marker = getattr(asyncio.coroutines, "_is_coroutine", None)
    return marker is not None and getattr(obj, "_is_coroutine", None) is marker


def detect(app):
    """Returns ``(is_asgi, reason)`` for an application object, as uvicorn's ``--interface auto`` decides
    ASGI 3: a class whose instances are awaitable, a coroutine function (``async def app(scope, receive,
    send)``, also behind ``functools.partial``), or an object whose ``__call__`` is a coroutine function
    (``async def __call__``: FastAPI, Starlette, Django's ASGIHandler). Anything else is WSGI."""
    if inspect.isclass(app):
        if hasattr(app, "__await__"):
            return True, "it is a class with __await__ (instances are awaitable)"
        return False, "it is a class whose instances are not awaitable"
    if inspect.isfunction(app) or inspect.ismethod(app) or isinstance(app, functools.partial):
        if _is_coroutine_function(app):
            return True, "it is a coroutine function (async def)"
        return False, "it is a plain function (not async def)"
    call = getattr(app, "__call__", None)
    if call is not None and _is_coroutine_function(call):
        return True, "its __call__ is a coroutine function (async def __call__)"
    return False, "it is a callable whose __call__ is not async def"


def new_loop():
    """A new event loop and its kind: uvloop's when uvloop is installed, else asyncio's default."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop(), "asyncio"
    return uvloop.new_event_loop(), "uvloop %s" % getattr(uvloop, "__version__", "")


def _run_loop(loop, started):
    asyncio.set_event_loop(loop)
    loop.call_soon(started.set)
    try:
        loop.run_forever()
    finally:
        started.set()


def start_loop_thread(loop):
    """Runs ``loop`` forever on a daemon thread named ``pyfcgi-asgi-loop``; returns once it runs."""
    started = threading.Event()
    thread = threading.Thread(target=_run_loop, args=(loop, started), name="pyfcgi-asgi-loop", daemon=True)
    thread.start()
    started.wait()
    return thread


def stop_loop(loop, tasks, timeout):
    """Cancels the request tasks still running, gives them ``timeout`` seconds to finish, stops the loop."""

    async def cancel_all():
        pending = [t for t in list(tasks) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    try:
        asyncio.run_coroutine_threadsafe(cancel_all(), loop).result(timeout + 1)
    except Exception:
        pass
    loop.call_soon_threadsafe(loop.stop)


class Lifespan:
    """The ASGI lifespan protocol for one application, run on the event loop's thread.

    ``startup()`` and ``shutdown()`` are called from another thread and block until the application answered
    (or, for shutdown, ``timeout`` seconds passed). ``state`` is the lifespan scope's namespace; every request
    scope gets a shallow copy of it.
    """

    def __init__(self, app, loop):
        self.app = app
        self.loop = loop
        self.state = {}
        self.supported = True
        self.unsupported = None  # why lifespan is taken as unsupported (the error the application raised)
        self.failed = None  # the error text when startup failed
        self._queue = None
        self._startup_done = None
        self._shutdown_done = None
        self._task = None
        self._shutdown_failed = None

    def startup(self):
        """Runs the startup phase. Returns ``("complete", None)``, ``("unsupported", error text)`` (the
        application raised before answering: it keeps being served without lifespan) or ``("failed", message)``
        (``lifespan.startup.failed``)."""
        asyncio.run_coroutine_threadsafe(self._startup(), self.loop).result()
        if self.failed is not None:
            return "failed", self.failed
        if not self.supported:
            return "unsupported", self.unsupported
        return "complete", None

    def shutdown(self, timeout):
        """Runs the shutdown phase, at most ``timeout`` seconds. Returns None, or a text saying what went wrong
        (the application's error, or that it did not finish in time)."""
        if not self.supported or self.failed is not None or self._task is None:
            return None
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
        try:
            return future.result(timeout)
        except Exception:
            future.cancel()
            return "the application did not finish lifespan shutdown within %s s" % timeout

    async def _startup(self):
        self._queue = asyncio.Queue()
        self._startup_done = asyncio.Event()
        self._shutdown_done = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._main())
        await self._queue.put({"type": "lifespan.startup"})
        await self._startup_done.wait()

    async def _shutdown(self):
        await self._queue.put({"type": "lifespan.shutdown"})
        await self._shutdown_done.wait()
        return self._shutdown_failed

    async def _main(self):
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:  # noqa: B902 - the application's error is reported, never propagated
            if not self._startup_done.is_set():
                # uvicorn's `auto`: raising before answering startup means lifespan is not supported.
                self.supported = False
                self.unsupported = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            elif not self._shutdown_done.is_set() and self._shutdown_failed is None and self.failed is None:
                self._shutdown_failed = "exception in lifespan shutdown:\n" + "".join(
                    traceback.format_exception(type(exc), exc, exc.__traceback__)
                )
        finally:
            self._startup_done.set()
            self._shutdown_done.set()

    async def _receive(self):
        return await self._queue.get()

    async def _send(self, message):
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "lifespan.startup.complete":
            self._startup_done.set()
        elif kind == "lifespan.startup.failed":
            self.failed = message.get("message") or "lifespan.startup.failed (no message)"
            self._startup_done.set()
        elif kind == "lifespan.shutdown.complete":
            self._shutdown_done.set()
        elif kind == "lifespan.shutdown.failed":
            self._shutdown_failed = message.get("message") or "lifespan.shutdown.failed (no message)"
            self._shutdown_done.set()
        else:
            raise RuntimeError("unexpected ASGI lifespan message %r" % (kind,))
