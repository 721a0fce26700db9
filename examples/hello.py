"""Run a command in a throw-away container from Python, and read back what it wrote to a volume.

sudo .venv/bin/python examples/hello.py
"""

import sys
import tempfile

import pycontain


def main() -> int:
    with tempfile.TemporaryDirectory() as out:
        code = pycontain.run(
            "default",
            [
                "sh",
                "-c",
                "echo \"$(hostname): pid $$, $(ls /proc | grep -c '^[0-9]') processes\" > /out/report",
            ],
            hostname="hello",
            volumes=[f"{out}:/out"],
            auto_remove=True,
        )
        with open(f"{out}/report") as f:
            print(f.read().strip())
    return code


if __name__ == "__main__":
    sys.exit(main())
