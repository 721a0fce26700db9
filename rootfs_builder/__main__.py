"""``python -m rootfs_builder build [default] [--force]`` / ``verify [default|PATH] [--repair]`` / ``path`` /
``import SOURCE [NAME[:TAG]] [--variant V] [--include PKGS] [--file PATH]`` (the store; see ``pycontain import``)."""

from __future__ import annotations

import argparse
import sys

import rootfs_builder
from pycontain.errors import PycontainError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rootfs_builder",
        description="build and check pycontain's built-in busybox root filesystem",
    )
    parser.add_argument(
        "--data-root", metavar="DIR", help="data root (default: $PYCONTAIN_DATA, else /var/lib/pycontain)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the default root filesystem (no-op when already intact)")
    b.add_argument("name", nargs="?", default="default", choices=["default"])
    b.add_argument("--force", action="store_true", help="rebuild even when intact")
    v = sub.add_parser("verify", help="full check: busybox sha256, every applet link, the tree")
    v.add_argument("name", nargs="?", default="default", help="'default' or a root filesystem directory")
    v.add_argument("--repair", action="store_true", help="rebuild 'default' when damaged")
    p = sub.add_parser("path", help="print the resolved path (building 'default' if needed)")
    p.add_argument("name", nargs="?", default="default")
    i = sub.add_parser(
        "import",
        help="import an image into the store (OCI layout or archive, docker-archive, "
        "rootfs tarball or directory, debian:SUITE, closure:BINARY)",
    )
    i.add_argument("source")
    i.add_argument("name", nargs="?", default=None, help="NAME[:TAG]")
    i.add_argument("--variant", default="minbase", help="debian: the mmdebstrap variant")
    i.add_argument("--include", action="append", default=[], help="debian: extra packages (comma-separated)")
    i.add_argument("--mirror", default=None, help="debian: the mirror (default: apt's)")
    i.add_argument("--file", action="append", default=[], help="closure: also copy this host path")
    args = parser.parse_args(argv)

    try:
        if args.command == "build":
            from rootfs_builder.busybox import ensure_default

            path, built = ensure_default(args.data_root, force=args.force, progress=True)
            print(f"{'built' if built else 'already built'}: {path}")
        elif args.command == "import":
            from rootfs_builder.sources import import_source

            rec = import_source(
                args.source,
                args.name,
                args.data_root,
                variant=args.variant,
                include=args.include,
                mirror=args.mirror,
                files=args.file,
            )
            print(f"imported {rec['id'][:12]} ({', '.join(rec['names']) or 'untagged'})")
        elif args.command == "path":
            print(rootfs_builder.resolve(args.name, args.data_root))
        else:
            path = rootfs_builder.default_path(args.data_root) if args.name == "default" else args.name
            problems = rootfs_builder.verify(path)
            for line in problems:
                print(f"{path}: {line}")
            if problems and args.repair and args.name == "default":
                rootfs_builder.build_default(args.data_root, force=True)
                problems = rootfs_builder.verify(path)
                print(f"rebuilt: {path}" if not problems else f"still damaged after rebuild: {path}")
            elif not problems:
                print(f"ok: {path}")
            return 1 if problems else 0
    except PycontainError as e:
        print(f"pycontain: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
