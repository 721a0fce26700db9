"""A tiny Flask application: the appliance's entrypoint (``python3 /app/app.py``)."""

import importlib.metadata
import os
import platform
import socket

import flask

app = flask.Flask(__name__)


@app.get("/")
def index() -> dict:
    return {
        "message": "hello from a pycontain appliance",
        "flask": importlib.metadata.version("flask"),
        "python": platform.python_version(),
        "hostname": socket.gethostname(),
    }


@app.get("/health")
def health() -> tuple[str, int]:
    return "ok\n", 200


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "8000")))
