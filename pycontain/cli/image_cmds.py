"""Image commands: ``images``, ``import``, ``tag``, ``rmi`` and ``image inspect|ls|rm|prune|export`` (on the typer ``app``).

They only parse, call ``rootfs_builder`` (the store and its sources) and print. The data root is
``--data-root``, else ``$PYCONTAIN_DATA``, else ``/var/lib/pycontain``.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer

from .app import app
from .base import GLOBALS, command, for_each_ref

image_app = typer.Typer(help="Manage images: inspect, ls, rm, prune.", no_args_is_help=True)
app.add_typer(image_app, name="image")

DataRoot = Annotated[
    str | None,
    typer.Option(
        "--data-root",
        metavar="DIR",
        envvar="PYCONTAIN_DATA",
        help="Image store (default /var/lib/pycontain).",
    ),
]


def _store(data_root: str | None):
    from rootfs_builder.store import Store

    return Store(data_root)


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.3g}{unit}"
        n /= 1000
    return f"{n:.3g}TB"


def _ago(t: float) -> str:
    d = max(0, time.time() - t)
    for secs, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if d >= secs:
            n = int(d // secs)
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "just now"


def _split(name: str) -> tuple[str, str]:
    repo, _, tag = name.rpartition(":")
    return repo, tag


# -- images ---------------------------------------------------------------------------------------
@command(app, "images")
def images(
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only print image ids.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one array).")] = False,
    data_root: DataRoot = None,
) -> int:
    """List the images in the local store."""
    records = _store(data_root).list()
    if quiet:
        for r in records:
            print(r["id"][:12])
        return 0
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "Id": f"sha256:{r['id']}",
                        "RepoTags": r["names"],
                        "Created": r["created"],
                        "Imported": r["imported"],
                        "Size": sum(r["layer_sizes"]),
                        "Layers": len(r["layers"]),
                        "Source": r["source"],
                    }
                    for r in records
                ],
                indent=2,
            )
        )
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("REPOSITORY", "TAG", "IMAGE ID", "IMPORTED", "SIZE", "LAYERS"):
        table.add_column(col, no_wrap=True)
    for r in records:
        for name in r["names"] or ["<none>:<none>"]:
            repo, tag = _split(name)
            table.add_row(
                repo,
                tag,
                r["id"][:12],
                _ago(r["imported"]),
                human_size(sum(r["layer_sizes"])),
                str(len(r["layers"])),
            )
    Console(width=200 if not sys.stdout.isatty() else None).print(table)
    return 0


@command(image_app, "ls")
def image_ls(
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only print image ids.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one array).")] = False,
    data_root: DataRoot = None,
) -> int:
    """List the images in the local store (as 'pycontain images')."""
    return images(quiet=quiet, as_json=as_json, data_root=data_root)


# -- import ---------------------------------------------------------------------------------------
@command(app, "import")
def import_(
    source: Annotated[
        str,
        typer.Argument(
            help="An OCI layout directory (DIR or DIR:REF), an oci-archive or docker-archive tarball, a rootfs "
            "tarball or directory, debian:SUITE, or closure:BINARY[,BINARY...]. Prefix oci: oci-archive: "
            "docker-archive: tar: dir: to force the kind."
        ),
    ],
    name: Annotated[str | None, typer.Argument(metavar="[NAME[:TAG]]", help="Name the image.")] = None,
    variant: Annotated[
        str,
        typer.Option(
            "--variant",
            help="debian: mmdebstrap variant (extract, essential, "
            "minbase, buildd, apt, important, standard).",
        ),
    ] = "minbase",
    include: Annotated[
        list[str] | None, typer.Option("--include", metavar="PKG[,PKG]", help="debian: extra packages.")
    ] = None,
    mirror: Annotated[
        str | None,
        typer.Option("--mirror", help="debian: the mirror (default: the one apt is configured with)."),
    ] = None,
    files: Annotated[
        list[str] | None,
        typer.Option("--file", metavar="PATH", help="closure: also copy this host file or directory."),
    ] = None,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress; print only the id.")] = False,
    data_root: DataRoot = None,
) -> None:
    """Import an image into the local store (the kind of source is detected).

    Examples: pycontain import debian:bookworm deb12; pycontain import closure:/usr/bin/python3 py;
    pycontain import ./rootfs.tar.gz myapp:1.0"""
    from rootfs_builder.sources import import_source

    from ..interrupts import unwinding

    with unwinding():
        rec = import_source(
            source,
            name,
            data_root,
            progress=False if quiet else None,
            variant=variant,
            include=include,
            mirror=mirror,
            files=files,
        )
    if quiet:
        print(rec["id"])
    else:
        names = ", ".join(rec["names"]) or "untagged"
        print(
            f"imported {rec['id'][:12]} ({names}): {len(rec['layers'])} layer(s), "
            f"{human_size(sum(rec['layer_sizes']))}"
        )


# -- tag / rmi ------------------------------------------------------------------------------------
@command(app, "tag")
def tag(
    source: Annotated[str, typer.Argument(metavar="IMAGE", help="An image name, name:tag or id.")],
    target: Annotated[str, typer.Argument(metavar="NAME[:TAG]", help="The new name.")],
    data_root: DataRoot = None,
) -> None:
    """Give an image another name."""
    _store(data_root).tag(source, target)


@command(app, "rmi")
def rmi(
    refs: Annotated[list[str], typer.Argument(metavar="IMAGE", help="Image names, name:tags or ids.")],
    force: Annotated[
        bool,
        typer.Option(
            "-f",
            "--force",
            help="Remove an image given by id even when it has several names (never one a container uses).",
        ),
    ] = False,
    data_root: DataRoot = None,
) -> int:
    """Remove images (a name only untags when the image has others); delete layers no image uses any more."""

    def remove(ref: str) -> None:
        from .. import api

        untagged, deleted = api.remove_image(ref, GLOBALS.root, data_root, force=force)
        for n in untagged:
            print(f"Untagged: {n}")
        for i in deleted:
            print(f"Deleted: sha256:{i}")

    return for_each_ref(refs, remove, quiet=True)


@command(image_app, "rm")
def image_rm(
    refs: Annotated[list[str], typer.Argument(metavar="IMAGE", help="Image names, name:tags or ids.")],
    force: Annotated[bool, typer.Option("-f", "--force", help="As 'pycontain rmi -f'.")] = False,
    data_root: DataRoot = None,
) -> int:
    """Remove images (as 'pycontain rmi')."""
    return rmi(refs, force=force, data_root=data_root)


@command(image_app, "prune")
def image_prune(data_root: DataRoot = None) -> None:
    """Delete layers that no image uses (left behind by interrupted imports)."""
    for d in _store(data_root).prune_layers():
        print(f"Deleted layer: sha256:{d}")


# -- inspect --------------------------------------------------------------------------------------
@command(image_app, "inspect")
def image_inspect(
    refs: Annotated[list[str], typer.Argument(metavar="IMAGE", help="Image names or ids.")],
    data_root: DataRoot = None,
) -> int:
    """Print images' details as JSON (an array, like 'docker image inspect')."""
    found: list[dict] = []
    worst = for_each_ref(refs, lambda ref: found.append(_store(data_root).inspect(ref)), quiet=True)
    print(json.dumps(found, indent=2))
    return worst


# -- export ---------------------------------------------------------------------------------------
@command(image_app, "export")
def image_export(
    ref: Annotated[str, typer.Argument(metavar="IMAGE", help="An image name or id.")],
    dest: Annotated[str, typer.Argument(metavar="DEST", help="A new directory (OCI layout) or file.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="oci (a layout directory), oci-archive (a tar "
            "file), rootfs (one tarball of the merged root filesystem) or "
            "squashfs.",
        ),
    ] = "oci",
    compress: Annotated[
        str | None,
        typer.Option(
            "--compress",
            help="rootfs: none, gzip, zstd or xz "
            "(default none); squashfs: gzip, zstd, xz, lzo or "
            "lz4 (default gzip).",
        ),
    ] = None,
    data_root: DataRoot = None,
) -> int:
    """Export an image as an OCI layout or archive, a rootfs tarball or a squashfs image.

    The OCI forms are read by skopeo, podman load and 'pycontain import'.
    Example: pycontain image export --format oci-archive myapp myapp.tar"""
    from rootfs_builder import export

    out = export.export(ref, dest, data_root, fmt=fmt, compress=compress)
    if "manifest" in out:
        print(
            f"exported {ref} to {dest}: manifest sha256:{out['manifest'][:12]}, {len(out['layers'])} layer(s)"
        )
    else:
        print(f"exported {ref} to {dest}: {human_size(out['size'])}")
    return 0
