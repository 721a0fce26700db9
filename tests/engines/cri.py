"""A kubelet's side of the CRI, from Python: stubs generated from cri.proto at test time (grpcio-tools),
and the calls a kubelet makes to run a pod, spelled as plain methods."""

from __future__ import annotations

import importlib
import os
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))


def load_stubs(outdir: str):
    """(messages module, grpc module) for cri.proto, generated into ``outdir``."""
    from grpc_tools import protoc

    code = protoc.main(
        ["protoc", f"-I{HERE}", f"--python_out={outdir}", f"--grpc_python_out={outdir}", "cri.proto"]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed on {HERE}/cri.proto (exit {code})")
    sys.path.insert(0, outdir)
    try:
        return importlib.import_module("cri_pb2"), importlib.import_module("cri_pb2_grpc")
    finally:
        sys.path.remove(outdir)


class Cri:
    """One connection to a CRI endpoint (a unix socket)."""

    def __init__(self, socket_path: str, stubs, timeout: float = 60) -> None:
        import grpc

        self.pb, grpc_mod = stubs
        self.channel = grpc.insecure_channel(f"unix://{socket_path}")
        self.rt = grpc_mod.RuntimeServiceStub(self.channel)
        self.timeout = timeout

    def close(self) -> None:
        self.channel.close()

    def version(self):
        return self.rt.Version(self.pb.VersionRequest(version="v1"), timeout=self.timeout)

    def sandbox_config(self, name: str, host_network: bool = False, log_dir: str = ""):
        pb = self.pb
        mode = pb.NODE if host_network else pb.POD
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="default"),
            # As a kubelet does: a pod on the node's network gets no hostname of its own.
            hostname="" if host_network else name,
            log_directory=log_dir,
            linux=pb.LinuxPodSandboxConfig(
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(network=mode, pid=pb.CONTAINER, ipc=pb.POD)
                )
            ),
        )

    def run_pod(self, config, handler: str = "") -> str:
        req = self.pb.RunPodSandboxRequest(config=config, runtime_handler=handler)
        return self.rt.RunPodSandbox(req, timeout=self.timeout).pod_sandbox_id

    def pod_status(self, pod_id: str):
        return self.rt.PodSandboxStatus(
            self.pb.PodSandboxStatusRequest(pod_sandbox_id=pod_id), timeout=self.timeout
        ).status

    def stop_pod(self, pod_id: str) -> None:
        self.rt.StopPodSandbox(self.pb.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=self.timeout)

    def remove_pod(self, pod_id: str) -> None:
        self.rt.RemovePodSandbox(self.pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id), timeout=self.timeout)

    def create(
        self, pod_id: str, pod_config, name: str, image: str, args: list[str], memory: int = 0, log: str = ""
    ) -> str:
        pb = self.pb
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name),
            image=pb.ImageSpec(image=image),
            command=args,
            log_path=log,
            linux=pb.LinuxContainerConfig(
                resources=pb.LinuxContainerResources(memory_limit_in_bytes=memory),
                security_context=pb.LinuxContainerSecurityContext(
                    namespace_options=pod_config.linux.security_context.namespace_options
                ),
            ),
        )
        req = pb.CreateContainerRequest(pod_sandbox_id=pod_id, config=config, sandbox_config=pod_config)
        return self.rt.CreateContainer(req, timeout=self.timeout).container_id

    def start(self, cid: str) -> None:
        self.rt.StartContainer(self.pb.StartContainerRequest(container_id=cid), timeout=self.timeout)

    def stop(self, cid: str, grace: int = 0) -> None:
        self.rt.StopContainer(
            self.pb.StopContainerRequest(container_id=cid, timeout=grace), timeout=self.timeout
        )

    def remove(self, cid: str) -> None:
        self.rt.RemoveContainer(self.pb.RemoveContainerRequest(container_id=cid), timeout=self.timeout)

    def status(self, cid: str):
        return self.rt.ContainerStatus(
            self.pb.ContainerStatusRequest(container_id=cid), timeout=self.timeout
        ).status

    def exec_sync(self, cid: str, cmd: list[str], timeout: int = 30):
        req = self.pb.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=timeout)
        return self.rt.ExecSync(req, timeout=self.timeout)

    def wait_exited(self, cid: str, timeout: float = 30):
        """The container's status once it has exited (containerd records the exit asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(cid)
            if st.state == self.pb.CONTAINER_EXITED or time.monotonic() > deadline:
                return st
            time.sleep(0.05)
