"""Reports what the process looks like from inside (os.environ, sys.path, cwd), then mutates os.environ."""

import json
import os
import sys


def app(environ, start_response):
    keys = ["MY_SETTING", "MY_OTHER", "DJANGO_SETTINGS_MODULE", "WSGI_HANDLER", "PYTHONPATH", "LIBROOT",
            "ONLY_IN_ENV"]
    out = {
        "environ": {k: os.environ.get(k) for k in keys},
        "sys_path": sys.path,
        "cwd": os.getcwd(),
    }
    os.environ["MY_SETTING"] = "mutated-by-app"
    os.environ.pop("MY_OTHER", None)
    os.environ["ONLY_IN_ENV"] = "mutated-by-app"
    body = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
