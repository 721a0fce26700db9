#!/usr/bin/env python3
"""A tiny code runner: POST a snippet to http://127.0.0.1:8080/run, get its result as JSON.

    sudo .venv/bin/python examples/code-runner/server.py [--port 8080] [--pool 4] [--image default]
    curl -s --data-binary 'echo hello; uname -n' http://127.0.0.1:8080/run
    curl -s -H 'Content-Type: application/json' \\
         -d '{"code": "read x; echo $((x * 2))", "stdin": "21", "timeout": 2}' http://127.0.0.1:8080/run

Each request borrows a prepared sandbox from a pool (so it costs an exec, not a container start), writes
the snippet to /tmp/snippet in it, runs ``INTERPRETER /tmp/snippet`` (``sh`` for the built-in busybox
image; ``--image DIR --interpreter python3`` runs Python snippets in a root filesystem that has Python)
and destroys the sandbox afterwards. The body is the snippet itself, or JSON ``{"code", "stdin",
"timeout"}``. The answer is ``Result.to_dict()``: returncode, stdout, stderr (UTF-8, U+FFFD for invalid
bytes), truncated, wall_time, cpu_time, peak_memory, oom_killed, timed_out, pids_limited.

It only listens on loopback: anything else is refused. There is no authentication; do not expose it.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from pycontain.sandbox import SandboxPool  # noqa: E402

MAX_BODY = 1 << 20
MAX_TIMEOUT = 10.0


class Runner:
    def __init__(self, pool: SandboxPool, interpreter: str = "sh", default_timeout: float = 5.0) -> None:
        self.pool = pool
        self.interpreter = interpreter
        self.default_timeout = default_timeout

    def run(self, code: bytes, stdin: bytes | None, timeout: float | None) -> dict:
        timeout = min(timeout or self.default_timeout, MAX_TIMEOUT)
        with self.pool.acquire(timeout=30) as sb:
            sb.put_file("/tmp/snippet", code)
            r = sb.run([self.interpreter, "/tmp/snippet"], input=stdin, timeout=timeout, max_output=64 << 10)
        return r.to_dict()


def make_handler(runner: Runner) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "pycontain-code-runner/0.1"

        def _reply(self, status: int, doc: dict) -> None:
            body = json.dumps(doc).encode() + b"\n"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/health":
                self._reply(200, {"ok": True, "ready": runner.pool.ready})
            else:
                self._reply(404, {"error": "POST a snippet to /run"})

        def do_POST(self) -> None:
            if self.path != "/run":
                self._reply(404, {"error": "POST a snippet to /run"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._reply(413, {"error": f"body larger than {MAX_BODY} bytes"})
                return
            body = self.rfile.read(length)
            stdin, timeout = None, None
            if (self.headers.get("Content-Type") or "").startswith("application/json"):
                try:
                    doc = json.loads(body)
                    code = str(doc["code"]).encode()
                    stdin = str(doc["stdin"]).encode() if doc.get("stdin") is not None else None
                    timeout = float(doc["timeout"]) if doc.get("timeout") is not None else None
                except (ValueError, KeyError, TypeError) as e:
                    self._reply(400, {"error": f"bad JSON request: {e}"})
                    return
            else:
                code = body
            try:
                self._reply(200, runner.run(code, stdin, timeout))
            except Exception as e:
                self._reply(500, {"error": str(e)})

        def log_message(self, fmt: str, *args: object) -> None:
            sys.stderr.write(f"code-runner: {self.address_string()} {fmt % args}\n")

    return Handler


def serve(host: str, port: int, runner: Runner) -> ThreadingHTTPServer:
    """A server bound to ``host`` (which must be a loopback address); call ``serve_forever()`` on it."""
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(
            f"code-runner: refusing to listen on {host}: only loopback addresses (127.0.0.1, ::1)"
        )
    server = ThreadingHTTPServer((host, port), make_handler(runner))
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--pool", type=int, default=4, help="sandboxes kept ready (default 4)")
    ap.add_argument("--image", default="default", help="root filesystem (default: the built-in busybox one)")
    ap.add_argument("--interpreter", default="sh", help="runs /tmp/snippet (default sh; python3 for Python)")
    ap.add_argument("--memory", default="64m")
    ap.add_argument("--pids", type=int, default=64)
    ap.add_argument("--cpus", default="1")
    ap.add_argument("--root", help="pycontain state root (default /run/pycontain)")
    args = ap.parse_args(argv)
    # read_only: snippets write to /tmp only, so the pool resets a used sandbox rather than making another.
    with SandboxPool(
        size=args.pool,
        image=args.image,
        root=args.root,
        memory=args.memory,
        pids=args.pids,
        cpus=args.cpus,
        read_only=True,
    ) as pool:
        server = serve(args.host, args.port, Runner(pool, args.interpreter))
        print(f"code-runner: listening on http://{args.host}:{server.server_address[1]}/run", file=sys.stderr)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
