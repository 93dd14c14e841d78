"""A small FastAPI site used as pyfcgi's ASGI example and in its end-to-end tests (tests/asgi_e2e.rs).

Routes cover what ASGI deployments need: JSON with path and query parameters, a form, an upload read as a
stream (never held whole in memory), a streamed response and server-sent events, a file, lifespan state, a
background task that runs after the response went out, a long wait that shows one process serving many
requests at once, and an error. Static files under /static/ are served by the front server.

Run it: ``pyfcgi --bind 127.0.0.1:9000 --app app:app --app-root examples/fastapi_app`` (pyfcgi sees that the
app is ASGI: ``async def __call__``), or ``bash examples/run.sh fastapi``.
"""

import asyncio
import hashlib
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import BackgroundTasks, FastAPI, Form, Request
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse

HERE = Path(__file__).resolve().parent
# Where the lifespan and background-task marks go (the tests read them); the system temp dir by default.
MARKS = Path(os.environ.get("FASTAPI_EXAMPLE_MARKS", "/tmp/pyfcgi-fastapi-example"))


def mark(name, text=""):
    MARKS.mkdir(parents=True, exist_ok=True)
    with open(MARKS / name, "a", encoding="utf-8") as f:
        f.write(f"{text or name} pid={os.getpid()} at={time.time():.3f}\n")


@asynccontextmanager
async def lifespan(app):
    mark("startup")
    yield {"started_at": time.time(), "greeting": "Hello from FastAPI on pyfcgi"}
    mark("shutdown")


app = FastAPI(lifespan=lifespan)


@app.get("/", response_class=PlainTextResponse)
async def index(request: Request):
    return request.state.greeting + "\n"


@app.get("/items/{name}")
async def item(name: str, q: str = "", n: int = 1):
    return {"name": name, "q": q, "n": n}


@app.get("/echo")
async def echo(request: Request):
    return {
        "path": request.url.path,
        "root_path": request.scope.get("root_path"),
        "raw_path": request.scope.get("raw_path", b"").decode("latin-1"),
        "query": dict(request.query_params),
        "method": request.method,
        "scheme": request.url.scheme,
        "http_version": request.scope["http_version"],
        "client": list(request.scope["client"] or []),
        "headers": {k: v for k, v in request.headers.items() if k.startswith("x-")},
        "started_at": request.state.started_at,
        "pid": os.getpid(),
    }


@app.post("/form", response_class=PlainTextResponse)
async def form(name: str = Form(...)):
    return f"Hello, {name}!\n"


@app.post("/upload")
async def upload(request: Request):
    digest = hashlib.sha256()
    size = chunks = biggest = 0
    async for chunk in request.stream():
        digest.update(chunk)
        size += len(chunk)
        chunks += 1 if chunk else 0
        biggest = max(biggest, len(chunk))
    return {"size": size, "sha256": digest.hexdigest(), "chunks": chunks, "biggest_chunk": biggest}


@app.get("/stream")
async def stream(n: int = 5, delay: float = 0.2):
    async def generate():
        for i in range(n):
            yield f"event {i} at {time.time():.3f}\n"
            await asyncio.sleep(delay)

    return StreamingResponse(generate(), media_type="text/plain")


@app.get("/sse")
async def sse(request: Request, n: int = 5, delay: float = 0.2):
    async def events():
        for i in range(n):
            if await request.is_disconnected():
                mark("sse-disconnected", f"disconnected after {i}")
                return
            yield f"id: {i}\ndata: tick {i} at {time.time():.3f}\n\n"
            await asyncio.sleep(delay)
        mark("sse-done", f"sent {n}")

    return StreamingResponse(events(), media_type="text/event-stream")


@app.api_route("/file", methods=["GET", "HEAD"])
async def file():
    return FileResponse(HERE / "static" / "site.css", media_type="text/css")


@app.get("/background", response_class=PlainTextResponse)
async def background(tasks: BackgroundTasks, delay: float = 2.0):
    async def later():
        await asyncio.sleep(delay)
        mark("background", f"background task done after {delay}")

    tasks.add_task(later)
    return "answered before the background task\n"


@app.get("/sleep")
async def sleep(seconds: float = 0.5):
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@app.get("/sync")
def sync_endpoint():
    # A plain def endpoint runs in the framework's thread pool, as under uvicorn.
    time.sleep(0.05)
    return {"sync": True}


@app.get("/error")
async def error():
    raise RuntimeError("this page fails on purpose")
