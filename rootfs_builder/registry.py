"""Pull images from and push them to registries, and log in to them, by driving ``skopeo``.

skopeo (containers/image, the library podman and buildah use) speaks the registry protocol: token and basic
auth, the auth file, HTTPS with certificate checks, blob and manifest digest verification, cross-repository
blob mounts and the checks that skip blobs a registry already holds. pycontain keeps what is its own: the
reference syntax, which layers its store already has (they are not fetched again) and the store's import.

References follow docker's syntax: ``[HOST[:PORT]/]PATH[:TAG][@sha256:DIGEST]``; a first component
without ``.`` or ``:`` (and not ``localhost``) is a Docker Hub path (``alpine`` is
``docker.io/library/alpine:latest``). As docker does, a registry on a loopback address is reached without
TLS verification unless ``tls_verify`` says otherwise.

Credentials live in the auth file podman and skopeo use (``$REGISTRY_AUTH_FILE``, else
``$XDG_RUNTIME_DIR/containers/auth.json``, else ``/run/containers/UID/auth.json``): mode 0600 in a 0700
directory, written by ``skopeo login``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from pycontain.errors import InvalidArgument, NotFound, PermissionDenied, PycontainError, Unsupported
from pycontain.interrupts import unwinding
from rootfs_builder.progress import Progress
from rootfs_builder.store import Store, parse_name

DOCKER_HUB = "docker.io"
_PATH_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_HOST_RE = re.compile(r"^(?:\[[0-9a-fA-F:]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
# the one image name a pulled layout holds while it is imported
_LAYOUT_REF = "pull"


@dataclass(frozen=True)
class Reference:
    host: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def repository(self) -> str:
        return f"{self.host}/{self.path}"

    def __str__(self) -> str:
        s = self.repository
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s

    @property
    def loopback(self) -> bool:
        host = self.host.rsplit(":", 1)[0] if not self.host.endswith("]") else self.host
        host = host.strip("[]")
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


def parse_reference(ref: str) -> Reference:
    """docker's reference syntax → a Reference (``latest`` when neither a tag nor a digest is given)."""
    bad = InvalidArgument(
        f"invalid image reference {ref!r}: use [HOST[:PORT]/]NAME[:TAG][@sha256:DIGEST] "
        "(e.g. 'alpine', '127.0.0.1:5000/tools/web:1')"
    )
    if ref.startswith("docker://"):
        ref = ref[len("docker://") :]
    rest, _, digest = ref.partition("@")
    if digest and not _DIGEST_RE.match(digest):
        raise InvalidArgument(f"invalid digest {digest!r} in {ref!r}: use sha256: and 64 hex digits")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        host, rest = first, remainder
        if not _HOST_RE.match(host):
            raise bad
    else:
        host = DOCKER_HUB
    tag = None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise InvalidArgument(f"invalid tag {tag!r} in {ref!r}: use letters, digits and . _ -")
    if not rest or not _PATH_RE.match(rest):
        raise bad
    if host == DOCKER_HUB and "/" not in rest:
        rest = f"library/{rest}"
    if tag is None and not digest:
        tag = "latest"
    return Reference(host, rest, tag, digest or None)


def registry_host(server: str) -> str:
    """``login``/``logout``'s argument: a host[:port], a URL or a reference → the registry's host[:port]."""
    server = re.sub(r"^[a-z]+://", "", server).split("/", 1)[0]
    if not server or not _HOST_RE.match(server):
        raise InvalidArgument(f"invalid registry {server!r}: use HOST[:PORT] (e.g. 127.0.0.1:5000)")
    return DOCKER_HUB if server in ("index.docker.io", "registry-1.docker.io") else server


def _tls(ref_or_host: Reference | str, tls_verify: bool | None) -> list[str]:
    loopback = (
        ref_or_host.loopback
        if isinstance(ref_or_host, Reference)
        else Reference(ref_or_host, "x", None, None).loopback
    )
    verify = tls_verify if tls_verify is not None else not loopback
    return [] if verify else ["--tls-verify=false"]


def _auth(authfile: str | None) -> list[str]:
    return ["--authfile", authfile] if authfile else []


def _message(stderr: str) -> str:
    """skopeo's last error line without its logrus decoration."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    if not lines:
        return "skopeo failed"
    last = lines[-1]
    m = re.search(r'msg="((?:[^"\\]|\\.)*)"', last)
    if m:
        last = m.group(1).encode().decode("unicode_escape", errors="replace")
    # containers/image wraps each cause in its context ("Error parsing image name "docker://X": reading
    # manifest T in X: manifest unknown: manifest unknown"): keep the innermost causes, once each
    parts = [p for p in re.sub(r"^Error: ", "", last).split(": ") if p]
    while len(parts) > 1 and parts[-1] == parts[-2]:
        parts.pop()
    if len(parts) > 2 and parts[0].startswith(("Error parsing image name", "initializing source")):
        parts = parts[1:]
    return ": ".join(parts)


def _error(what: str, stderr: str) -> PycontainError:
    msg = _message(stderr)
    low = msg.lower()
    if "manifest unknown" in low or "name unknown" in low or "not found" in low:
        return NotFound(f"{what}: not found in the registry ({msg})")
    if "unauthorized" in low or "invalid username/password" in low or "authentication required" in low:
        return PermissionDenied(f"{what}: the registry refused the credentials ({msg})")
    if "http response to https client" in low or "certificate" in low or "x509" in low:
        return PycontainError(f"{what}: {msg} (for a registry without TLS, add --tls-verify=false)")
    return PycontainError(f"{what}: {msg}")


def _skopeo(args: list[str], what: str, *, show: bool = False, stdin: str | None = None) -> str:
    """Run skopeo; its progress goes to our stdout when ``show``; one clear error on failure.

    An interruption kills skopeo and waits for it before the exception goes on, so nothing it writes
    outlives the caller's clean-up.
    """
    if shutil.which("skopeo") is None:
        raise Unsupported("registries need the skopeo program (apt-get install skopeo)")
    proc = subprocess.Popen(
        ["skopeo", *args],
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=None if show else subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(stdin)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if proc.returncode != 0:
        raise _error(what, err)
    return out or ""


def _present_blobs(store: Store, ref: Reference, common: list[str]) -> list[str]:
    """Blob digests (hex) of the image's layers whose content the store already has."""
    src = f"docker://{ref}"
    listed = json.loads(_skopeo(["inspect", "--no-tags", *common, src], str(ref)))
    config = json.loads(_skopeo(["inspect", "--config", "--raw", *common, src], str(ref)))
    blobs = [str(d) for d in listed.get("Layers") or []]
    diffs = [str(d) for d in (config.get("rootfs") or {}).get("diff_ids") or []]
    if len(blobs) != len(diffs):
        return []
    return [
        b[7:]
        for b, d in zip(blobs, diffs, strict=True)
        if b.startswith("sha256:") and d.startswith("sha256:") and os.path.isdir(store.layer_path(d[7:]))
    ]


def pull(
    reference: str,
    data_root: str | None = None,
    *,
    tls_verify: bool | None = None,
    authfile: str | None = None,
    progress: bool | None = None,
) -> dict:
    """Pull ``reference`` into the store and return the image's record (named by the tag, if any).

    The registry's image is copied into a temporary OCI layout beside the store, then imported from it;
    layers whose content the store holds are marked present in that layout, so skopeo does not fetch them.
    Whatever stops the pull (an error, Ctrl-C, SIGTERM) removes the layout and the layers it unpacked for
    no image; a crash leaves them for the store's next import and ``image prune`` to sweep.
    """
    ref = parse_reference(reference)
    name = parse_name(f"{ref.repository}:{ref.tag}") if ref.tag else None
    common = [*_tls(ref, tls_verify), *_auth(authfile)]
    show = progress if progress is not None else sys.stderr.isatty()
    store = Store(data_root)
    with unwinding():
        store.ensure()
        before = set(os.listdir(store.layers_dir))
        try:
            with store.importing():
                return _pull_into(store, ref, name, common, tls_verify, authfile, show, progress)
        except BaseException:
            store.discard_new_layers(before)
            raise


def _pull_into(
    store: Store,
    ref: Reference,
    name: str | None,
    common: list[str],
    tls_verify: bool | None,
    authfile: str | None,
    show: bool,
    progress: bool | None,
) -> dict:
    from rootfs_builder import sources

    tmp_root = os.path.join(store.root, "tmp")
    os.makedirs(tmp_root, mode=0o700, exist_ok=True)
    work = tempfile.mkdtemp(prefix="pull-", dir=tmp_root)
    try:
        layout = os.path.join(work, "layout")
        blobs = os.path.join(layout, "blobs", "sha256")
        os.makedirs(blobs)
        for hexd in _present_blobs(store, ref, common):
            # skopeo's OCI layout destination takes an existing blob file as the blob itself; the
            # import never opens it, because the layer's diff_id is already in the store.
            open(os.path.join(blobs, hexd), "wb").close()
        copy = ["copy", *([] if show else ["--quiet"])]
        copy += [a.replace("--tls-verify", "--src-tls-verify") for a in _tls(ref, tls_verify)]
        copy += ["--src-authfile", authfile] if authfile else []
        _skopeo([*copy, f"docker://{ref}", f"oci:{layout}:{_LAYOUT_REF}"], str(ref), show=show)
        with Progress(progress) as bar:
            return sources.import_pulled(store, layout, _LAYOUT_REF, str(ref), name, bar)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def push(
    image: str,
    destination: str | None = None,
    data_root: str | None = None,
    *,
    tls_verify: bool | None = None,
    authfile: str | None = None,
    progress: bool | None = None,
) -> str:
    """Push the stored ``image`` to ``destination`` (default: its own name); return the manifest digest."""
    from rootfs_builder.export import export_image

    store = Store(data_root)
    rec = store.get(image)
    if destination is None:
        found_as = store.find_name(store.load(), image)[1]
        if found_as is None:
            raise InvalidArgument(
                f"{image!r} is an image id: give the destination (pycontain push {image} HOST/NAME:TAG)"
            )
        destination = found_as
    ref = parse_reference(destination)
    if ref.digest:
        raise InvalidArgument(f"cannot push to a digest ({destination!r}): give a tag")
    show = progress if progress is not None else sys.stderr.isatty()
    with unwinding():
        store.ensure()
        tmp_root = os.path.join(store.root, "tmp")
        os.makedirs(tmp_root, mode=0o700, exist_ok=True)
        work = tempfile.mkdtemp(prefix="push-", dir=tmp_root)
        try:
            layout = os.path.join(work, "layout")
            export_image(rec["id"], layout, data_root, tag=_LAYOUT_REF)
            digest_file = os.path.join(work, "digest")
            copy = ["copy", *([] if show else ["--quiet"]), "--digestfile", digest_file]
            copy += [a.replace("--tls-verify", "--dest-tls-verify") for a in _tls(ref, tls_verify)]
            copy += [*(["--dest-authfile", authfile] if authfile else [])]
            _skopeo([*copy, f"oci:{layout}:{_LAYOUT_REF}", f"docker://{ref}"], str(ref), show=show)
            with open(digest_file) as f:
                return f.read().strip()
        finally:
            shutil.rmtree(work, ignore_errors=True)


def login(
    server: str,
    username: str,
    password: str,
    *,
    tls_verify: bool | None = None,
    authfile: str | None = None,
) -> str:
    """Check the credentials with the registry and store them in the auth file; return the host."""
    host = registry_host(server)
    if not username:
        raise InvalidArgument("login needs a user name (-u USER)")
    args = ["login", *_tls(host, tls_verify), *_auth(authfile), "-u", username, "--password-stdin", host]
    _skopeo(args, f"login to {host}", stdin=password)
    return host


def logout(server: str | None, *, authfile: str | None = None) -> str | None:
    """Forget the credentials of ``server`` (every registry's when None)."""
    if server is None:
        _skopeo(["logout", *_auth(authfile), "--all"], "logout")
        return None
    host = registry_host(server)
    try:
        _skopeo(["logout", *_auth(authfile), host], f"logout from {host}")
    except PycontainError as e:
        if "not logged in" in str(e):
            raise NotFound(f"not logged in to {host}") from None
        raise
    return host
