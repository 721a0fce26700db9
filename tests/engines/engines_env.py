"""containerd and dockerd, started by the tests with pycontain as a runtime, each in a ``NamespaceSandbox``.

Both daemons run inside a namespace set of their own (see tests/nsbox.py), with their own network
namespace (CNI's bridge and the pods' veths never reach the host), their state under a temp dir, and
overlays on /etc, /var/lib and /opt for what they write there whatever their configuration says
(dockerd's /etc/docker/key.json, CNI's /var/lib/cni). No registry is reachable, so the images are an
archive made from the test root filesystem (``image_archive``) and imported.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import time

from nsbox import NamespaceSandbox

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYCONTAIN = os.path.join(REPO, ".venv", "bin", "pycontain")
IMAGE = "localhost/pycontain-busybox:test"
PAUSE_IMAGE = "localhost/pycontain-pause:test"  # the pod sandbox's process: sleeps until killed
NAMESPACE = "k8s.io"  # containerd's namespace for CRI (ctr's commands here use it too)
POD_SUBNET = "10.231.0.0/24"  # inside the daemon's own network namespace only


def image_archive(rootfs: str, path: str) -> None:
    """A docker-archive (what 'docker save' writes, and 'docker load' / 'ctr images import' read) holding
    IMAGE (cmd sh) and PAUSE_IMAGE (cmd sleep), both with one layer: ``rootfs``."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        tar.add(rootfs, arcname=".")
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    manifest = []
    with tarfile.open(path, "w") as out:
        _add(out, "layer/layer.tar", layer_bytes)
        for tag, cmd in ((IMAGE, ["sh"]), (PAUSE_IMAGE, ["sleep", "2147483647"])):
            config = {
                "architecture": "amd64",
                "os": "linux",
                "config": {
                    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                    "Cmd": cmd,
                },
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [{"created_by": "pycontain tests"}],
            }
            data = json.dumps(config).encode()
            name = hashlib.sha256(data).hexdigest() + ".json"
            _add(out, name, data)
            manifest.append({"Config": name, "RepoTags": [tag], "Layers": ["layer/layer.tar"]})
        _add(out, "manifest.json", json.dumps(manifest).encode())


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _wait_for(check, what: str, log: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            with open(log) as f:
                raise RuntimeError(f"{what} did not come up within {timeout} s:\n{f.read()[-3000:]}")
        time.sleep(0.05)


class ContainerdEnv(NamespaceSandbox):
    """containerd 1.6 with its CRI plugin: runtime handlers ``pycontain`` (the default) and ``runc``."""

    prefix = "pycontain-containerd-"

    def __init__(
        self, archive: str, runtimes: dict[str, str] | None = None, restrict_oom_score_adj: bool = False
    ) -> None:
        super().__init__(overlays=("/etc", "/var/lib", "/opt"), net=True)
        self.restrict_oom_score_adj = restrict_oom_score_adj
        self.archive = archive
        self.runtimes = runtimes or {"pycontain": PYCONTAIN}
        self.socket = os.path.join(self.tmp, "containerd.sock")
        self.log = os.path.join(self.tmp, "containerd.log")

    def _config(self) -> str:
        t = self.tmp
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        lines = [
            "version = 2",
            f'root = "{t}/root"',
            f'state = "{t}/state"',
            "[grpc]",
            f'  address = "{self.socket}"',
            '[plugins."io.containerd.internal.v1.opt"]',
            f'  path = "{t}/opt"',
            f"[{cri}]",
            f'  sandbox_image = "{PAUSE_IMAGE}"',
            f"  restrict_oom_score_adj = {str(self.restrict_oom_score_adj).lower()}",
            f"[{cri}.cni]",
            '  bin_dir = "/usr/lib/cni"',
            f'  conf_dir = "{t}/cni"',
            f"[{cri}.containerd]",
            '  snapshotter = "native"',
            f'  default_runtime_name = "{next(iter(self.runtimes))}"',
        ]
        for name, binary in self.runtimes.items():
            lines += [
                f"[{cri}.containerd.runtimes.{name}]",
                '  runtime_type = "io.containerd.runc.v2"',
                f"[{cri}.containerd.runtimes.{name}.options]",
                f'  BinaryName = "{binary}"',
            ]
        return "\n".join(lines) + "\n"

    def setup(self) -> None:
        t = self.tmp
        os.makedirs(os.path.join(t, "cni"))
        with open(os.path.join(t, "config.toml"), "w") as f:
            f.write(self._config())
        conflist = {
            "cniVersion": "0.4.0",
            "name": "pycontain-test",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "cni0",
                    "isGateway": True,
                    "ipMasq": False,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_SUBNET}]],
                        "dataDir": f"{t}/ipam",
                    },
                }
            ],
        }
        with open(os.path.join(t, "cni", "10-pycontain-test.conflist"), "w") as f:
            json.dump(conflist, f)
        self.daemon = self.popen("containerd", "--config", os.path.join(t, "config.toml"), log=self.log)
        _wait_for(lambda: self.ctr("version").returncode == 0, "containerd", self.log)
        p = self.ctr("images", "import", "--snapshotter", "native", self.archive, timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"ctr images import: {p.stderr}")

    def ctr(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.run("ctr", "--address", self.socket, "--namespace", NAMESPACE, *args, timeout=timeout)


class DockerEnv(NamespaceSandbox):
    """dockerd 20.10 (with the containerd it starts itself), runtime ``pycontain`` the default."""

    prefix = "pycontain-docker-"

    def __init__(self, archive: str) -> None:
        super().__init__(overlays=("/etc", "/var/lib", "/opt"), net=True)
        self.archive = archive
        self.socket = os.path.join(self.tmp, "docker.sock")
        self.log = os.path.join(self.tmp, "dockerd.log")
        self.env["DOCKER_CONFIG"] = os.path.join(self.tmp, "client")

    def setup(self) -> None:
        t = self.tmp
        with open(os.path.join(t, "daemon.json"), "w") as f:
            json.dump({}, f)
        self.daemon = self.popen(
            "dockerd",
            "--config-file",
            f"{t}/daemon.json",
            "--data-root",
            f"{t}/data",
            "--exec-root",
            f"{t}/exec",
            "--pidfile",
            f"{t}/dockerd.pid",
            "-H",
            f"unix://{self.socket}",
            "--storage-driver",
            "vfs",
            "--bridge",
            "none",
            "--iptables=false",
            "--ip-masq=false",
            "--exec-opt",
            "native.cgroupdriver=cgroupfs",
            "--add-runtime",
            f"pycontain={PYCONTAIN}",
            "--default-runtime",
            "pycontain",
            log=self.log,
        )
        _wait_for(lambda: self.docker("version").returncode == 0, "dockerd", self.log, timeout=60)
        p = self.docker("load", "-i", self.archive, timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"docker load: {p.stderr}")

    def docker(
        self, *args: str, timeout: float = 60, input: str | None = None
    ) -> subprocess.CompletedProcess:
        return self.run("docker", "-H", f"unix://{self.socket}", *args, timeout=timeout, input=input)

    def teardown(self) -> None:
        ids = self.docker("ps", "-aq").stdout.split()
        if ids:
            self.docker("rm", "-f", *ids)
