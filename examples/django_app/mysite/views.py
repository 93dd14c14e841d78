"""Views of the Django example: a page, a CSRF-protected form, a streamed upload, a streamed response, an error."""

import hashlib
import time

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render


def index(request):
    return HttpResponse("Hello from Django on pyfcgi\n", content_type="text/plain")


def form(request):
    if request.method == "POST":
        return HttpResponse(f"Hello, {request.POST.get('name', '')}!\n", content_type="text/plain; charset=utf-8")
    return render(request, "form.html")


def upload(request):
    if request.method != "POST":
        return render(request, "upload.html")
    uploaded = request.FILES["file"]
    digest = hashlib.sha256()
    size = 0
    for chunk in uploaded.chunks(64 * 1024):
        digest.update(chunk)
        size += len(chunk)
    return JsonResponse({"size": size, "sha256": digest.hexdigest()})


def stream(request):
    count = int(request.GET.get("n", 5))
    delay = float(request.GET.get("delay", 0.2))

    def generate():
        for i in range(count):
            yield f"event {i} at {time.time():.3f}\n"
            time.sleep(delay)

    return StreamingHttpResponse(generate(), content_type="text/plain")


def echo(request):
    return JsonResponse(
        {
            "path": request.path,
            "path_info": request.path_info,
            "args": {k: request.GET.getlist(k) for k in request.GET},
            "scheme": request.scheme,
            "method": request.method,
        }
    )


def error(request):
    raise RuntimeError("this page fails on purpose")
