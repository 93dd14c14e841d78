"""Flask hello world: the same body as hello.py, through Flask's routing."""

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return "Hello, World!\n", 200, {"Content-Type": "text/plain"}
