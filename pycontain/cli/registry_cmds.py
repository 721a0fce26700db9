"""``pull``, ``push``, ``login``, ``logout``, ``save`` and ``load`` (on the typer ``app``): parse, call
``rootfs_builder.registry`` / ``export`` / ``sources``, print."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .app import app
from .base import command
from .image_cmds import DataRoot, human_size

TlsVerify = Annotated[
    str | None,
    typer.Option(
        "--tls-verify",
        metavar="true|false",
        help="Require HTTPS with a verified certificate (default: true, but false for loopback registries).",
    ),
]
AuthFile = Annotated[
    str | None,
    typer.Option(
        "--authfile",
        metavar="FILE",
        envvar="REGISTRY_AUTH_FILE",
        help="The credentials file (default: podman's, $XDG_RUNTIME_DIR/containers/auth.json).",
    ),
]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="No progress; print only the result.")]


def _tls(value: str | None) -> bool | None:
    from ..errors import InvalidArgument

    if value is None:
        return None
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise InvalidArgument(f"--tls-verify takes true or false, not {value!r}")


@command(app, "pull")
def pull(
    reference: Annotated[
        str, typer.Argument(metavar="REF", help="[HOST[:PORT]/]NAME[:TAG][@sha256:DIGEST] (docker's syntax).")
    ],
    tls_verify: TlsVerify = None,
    authfile: AuthFile = None,
    quiet: Quiet = False,
    data_root: DataRoot = None,
) -> None:
    """Pull an image from a registry into the local store (layers the store has are not fetched).

    Example: pycontain pull localhost:5000/myapp:1.0"""
    from rootfs_builder.registry import pull as pull_

    rec = pull_(
        reference,
        data_root,
        tls_verify=_tls(tls_verify),
        authfile=authfile,
        progress=False if quiet else None,
    )
    if quiet:
        print(rec["id"])
    else:
        names = ", ".join(rec["names"]) or "untagged"
        print(f"pulled {rec['id'][:12]} ({names}): {len(rec['layers'])} layer(s)")


@command(app, "push")
def push(
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="A stored image's name or id.")],
    destination: Annotated[
        str | None,
        typer.Argument(metavar="[REF]", help="Where to push (default: the image's name)."),
    ] = None,
    tls_verify: TlsVerify = None,
    authfile: AuthFile = None,
    quiet: Quiet = False,
    data_root: DataRoot = None,
) -> None:
    """Push a stored image to a registry; print the manifest's digest."""
    from rootfs_builder.registry import push as push_

    digest = push_(
        image,
        destination,
        data_root,
        tls_verify=_tls(tls_verify),
        authfile=authfile,
        progress=False if quiet else None,
    )
    print(digest if quiet else f"pushed {destination or image}: {digest}")


@command(app, "login")
def login(
    server: Annotated[str, typer.Argument(metavar="REGISTRY", help="HOST[:PORT] of the registry.")],
    username: Annotated[str | None, typer.Option("-u", "--username", help="The user name.")] = None,
    password: Annotated[
        str | None, typer.Option("-p", "--password", help="The password (prefer --password-stdin).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    tls_verify: TlsVerify = None,
    authfile: AuthFile = None,
) -> None:
    """Log in to a registry: the credentials are checked, then kept in the auth file (mode 0600)."""
    from rootfs_builder.registry import login as login_

    from ..errors import InvalidArgument

    user = username if username is not None else input("Username: ")
    if password_stdin:
        if password is not None:
            raise InvalidArgument("--password and --password-stdin are exclusive")
        secret = sys.stdin.readline().rstrip("\n")
    elif password is not None:
        secret = password
    else:
        import getpass

        secret = getpass.getpass("Password: ")
    host = login_(server, user, secret, tls_verify=_tls(tls_verify), authfile=authfile)
    print(f"Login Succeeded ({host})")


@command(app, "logout")
def logout(
    server: Annotated[str | None, typer.Argument(metavar="[REGISTRY]", help="HOST[:PORT].")] = None,
    every: Annotated[bool, typer.Option("-a", "--all", help="Forget every registry's credentials.")] = False,
    authfile: AuthFile = None,
) -> None:
    """Forget a registry's credentials."""
    from rootfs_builder.registry import logout as logout_

    from ..errors import InvalidArgument

    if (server is None) == (not every):
        raise InvalidArgument("name a registry or give --all")
    host = logout_(None if every else server, authfile=authfile)
    print(f"Removed login credentials for {host or 'every registry'}")


@command(app, "save")
def save(
    images: Annotated[list[str], typer.Argument(metavar="IMAGE...", help="Stored images' names or ids.")],
    output: Annotated[str, typer.Option("-o", "--output", metavar="FILE", help="The archive to write.")],
    fmt: Annotated[
        str,
        typer.Option("--format", help="docker-archive (several images) or oci-archive (one)."),
    ] = "docker-archive",
    data_root: DataRoot = None,
) -> None:
    """Save images to an archive that 'docker load', 'podman load' and 'pycontain load' read."""
    import os

    from rootfs_builder.export import save_images

    from ..interrupts import unwinding

    with unwinding():
        save_images(images, output, data_root, fmt=fmt)
    print(f"saved {', '.join(images)} to {output} ({fmt}, {human_size(os.path.getsize(output))})")


@command(app, "load")
def load(
    archive: Annotated[
        str,
        typer.Option(
            "-i", "--input", metavar="FILE", help="A docker-archive or oci-archive (maybe compressed)."
        ),
    ],
    quiet: Quiet = False,
    data_root: DataRoot = None,
) -> None:
    """Load every image of a 'docker save' / 'podman save' / 'pycontain save' archive, with its names."""
    from rootfs_builder.sources import load_archive

    from ..interrupts import unwinding

    with unwinding():
        records = load_archive(archive, data_root, progress=False if quiet else None)
    for rec in records:
        names = ", ".join(rec["names"])
        print(rec["id"] if quiet else f"Loaded image: {names or rec['id']}")
