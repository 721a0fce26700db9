"""Start a detached container, run commands in it, stop and remove it, all from Python.

sudo .venv/bin/python examples/detached_service.py
"""

import os
import sys

import pycontain


def main() -> int:
    c = pycontain.start("default", ["sh", "-c", "echo up; exec sleep 300"], name="example-service")
    try:
        print(f"started {c.name} ({c.id[:12]}), status {c.status()}, host pid {c.pid}")
        child = c.exec(["sh", "-c", "echo inside: hostname $(hostname), I am pid $$"])
        os.waitpid(child.pid, 0)
        c.stop(timeout=1)
        print(f"after stop: {c.status()}")
    finally:
        c.remove(force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
