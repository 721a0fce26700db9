"""The build's ``pip`` step: the manifest's requirements fetched by the image's own python3 in one build
container, installed offline in another."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

from pycontain.build.cache import State
from pycontain.build.containers import BuildContainers, BuildError, last_line
from pycontain.build.manifest import Manifest
from pycontain.errors import PycontainError

# At the root: a /tmp mount point would be hidden by an image-less /tmp tmpfs.
WHEELS_MOUNT = ".pycontain-wheels"
PIP_MOUNT = ".pycontain-pip"
CA_MOUNT = ".pycontain-ca.pem"
# The host's pip settings a fetch container gets (where the index is, how long to wait): host config.
PIP_HOST_SETTINGS = frozenset(
    {"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_DEFAULT_TIMEOUT", "PIP_RETRIES"}
)


def pip_step(containers: BuildContainers, manifest: Manifest, state: State) -> State:
    """The manifest's requirements (PEP 508 names and versions, checked by the manifest) are fetched by
    the image's own python3 in a build container on the bridge network, wheels only, then installed
    offline in a second one: nothing the manifest names is read or run on the host. The host only
    downloads pip's own wheel, by its fixed name, for images that have no pip."""
    try:
        code, out, _ = containers.run(
            state, ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], keep=False
        )
    except PycontainError as e:
        code, out = e.exit_code, str(e)
    version = out.strip().splitlines()[-1] if code == 0 and out.strip() else ""
    if code != 0 or not version.replace(".", "").isdigit():
        raise BuildError(
            f"{manifest.where}: 'pip' needs python3 in the image, and it does not run there "
            f'({last_line(out) or f"exit status {code}"}): add packages = ["python3"]'
        )
    tools = os.path.join(containers.workdir(), "pip")
    wheels = os.path.join(containers.workdir(), "wheels")
    os.makedirs(tools, exist_ok=True)
    os.makedirs(wheels, exist_ok=True)
    containers.progress.status("pip download pip on the host")
    _host(
        manifest,
        [
            sys.executable,
            "-P",  # not the working directory (a build context: input, never code for the host) on sys.path
            "-m",
            "pip",
            "download",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--no-deps",
            "-d",
            tools,
            "pip",
        ],
        "pip download pip",
    )
    pip_whl = sorted(glob.glob(os.path.join(tools, "pip-*.whl")))
    if not pip_whl:
        raise BuildError("pip download did not fetch pip's own wheel")
    from pycontain.spec.docker import bind

    tools_at, wheels_at = f"/{PIP_MOUNT}", f"/{WHEELS_MOUNT}"
    pip = ["python3", f"{tools_at}/{os.path.basename(pip_whl[-1])}/pip"]
    common = ["--disable-pip-version-check", "--no-cache-dir"]
    mounts = [bind(tools, tools_at, readonly=True)]
    env = []
    ca = _ca_bundle()
    if ca is not None:  # the host's trust anchors, for a host behind a TLS-inspecting proxy
        mounts.append(bind(ca, f"/{CA_MOUNT}", readonly=True))
        env.append(f"PIP_CERT=/{CA_MOUNT}")
    env += [f"{k}={v}" for k, v in os.environ.items() if k in PIP_HOST_SETTINGS]
    containers.progress.status("pip download in a build container")
    fetch = [*pip, "download", *common, "--only-binary=:all:", "-d", wheels_at, "--", *manifest.pip]
    try:
        code, out, _ = containers.run(
            state,
            fetch,
            mounts=[*mounts, bind(wheels, wheels_at)],
            keep=False,
            network="bridge",
            extra_env=env,
        )
    except PycontainError as e:
        raise BuildError(f"{manifest.where}: pip download cannot run in a build container: {e}") from None
    if code != 0:
        lines = [ln for ln in out.splitlines() if ln.strip()]
        err = [ln for ln in lines if "ERROR" in ln] or lines[-1:]
        raise BuildError(
            f"{manifest.where}: pip download {' '.join(manifest.pip)} failed: "
            f"{err[0].strip() if err else f'exit status {code}'} "
            "(check the 'pip' requirements; wheels must exist for the image's Python)"
        )
    argv = [
        *pip,
        "install",
        *common,
        "--no-index",
        "--find-links",
        wheels_at,
        "--root-user-action=ignore",
        "--no-warn-script-location",
        "--break-system-packages",
        "--",
        *manifest.pip,
    ]
    return containers.layer(
        state,
        argv,
        f"pip install {' '.join(manifest.pip)}",
        mounts=[*mounts[:1], bind(wheels, wheels_at, readonly=True)],
        skip=frozenset({PIP_MOUNT, WHEELS_MOUNT}),
    )


def _host(manifest: Manifest, argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        err = [ln for ln in lines if "ERROR" in ln] or lines[-1:]
        raise BuildError(f"{manifest.where}: {what} failed: {err[0].strip() if err else proc.returncode}")


def _ca_bundle() -> str | None:
    """The host's CA bundle (pip's, requests' or OpenSSL's setting, else Debian's file), if any."""
    for candidate in (
        os.environ.get("PIP_CERT"),
        os.environ.get("REQUESTS_CA_BUNDLE"),
        os.environ.get("SSL_CERT_FILE"),
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None
