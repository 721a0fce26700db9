"""The container's filesystem plan (rootfs.plan) and the docker road into it (spec.docker), without root:
configs are built and planned, nothing is mounted."""

from __future__ import annotations

import json

import pytest

from pycontain import libc, rootfs
from pycontain.config_check import from_spec
from pycontain.errors import InvalidArgument
from pycontain.rootfs import (
    Step,
    bind_root,
    chroot,
    default_devices,
    devices,
    make_private,
    mount,
    move_root,
    overlay_root,
    pivot_root,
    readonly_proc,
    readonly_root,
    sysctls,
)
from pycontain.spec import default_spec, docker, parse

NSD = libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC


@pytest.fixture
def image(tmp_path) -> list[str]:
    """Two layers; the upper one has /etc and /run, neither has /tmp."""
    low, up = tmp_path / "low", tmp_path / "up"
    (low / "etc").mkdir(parents=True)
    (up / "run").mkdir(parents=True)
    return [str(low), str(up)]


def run_config(layers: list[str], **options):
    options.setdefault("env", [])
    return docker.to_config(layers, ["true"], name=None, image="img", **options)


def mount_steps(steps) -> list:
    return [s.args[0] for s in steps if s.op is mount]


def mounts(steps) -> list[tuple[str, str]]:
    return [(m.target, m.fstype) for m in mount_steps(steps)]


def fields(m) -> tuple:
    return (m.target, m.fstype, m.source, m.flags, m.data, m.propagation, m.attr_set, m.attr_clr)


def test_docker_style_plan_is_the_builtin_mounts_in_order(image, tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    cfg = run_config(
        image, mounts=[docker.volume(f"{data}:/data:ro"), docker.tmpfs("/cache:size=8m")], hostname="h"
    )
    steps = rootfs.plan(cfg)
    assert steps[:2] == [Step(make_private), Step(overlay_root, image, None, False)]
    assert mounts(steps) == [
        ("/data", "bind"),
        ("/proc", "proc"),
        ("/sys", "sysfs"),
        ("/sys/fs/cgroup", "cgroup"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/tmp", "tmpfs"),  # the image has none
        ("/cache", "tmpfs"),
    ]
    rest = steps[2 + len(mounts(steps)) :]
    assert rest[0] == Step(default_devices) and rest[2:] == [Step(pivot_root), Step(readonly_proc)]
    assert rest[1].op is devices
    # without a terminal /dev/console is a null device
    assert [d.to_dict() for d in rest[1].args[0]] == [
        {"path": "/dev/console", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}
    ]


def test_builtin_mounts_have_dockers_flags(image) -> None:
    by_target = {m.target: m for m in mount_steps(rootfs.plan(run_config(image)))}
    assert by_target["/proc"].flags == NSD
    assert by_target["/sys"].flags == NSD | libc.MS_RDONLY
    assert by_target["/sys/fs/cgroup"].flags == NSD | libc.MS_RDONLY
    assert by_target["/dev"].flags == libc.MS_NOSUID | libc.MS_STRICTATIME
    assert by_target["/dev"].data == "mode=755,size=65536k"
    assert by_target["/dev/pts"].data == "newinstance,ptmxmode=0666,mode=0620,gid=5"
    assert (by_target["/dev/shm"].source, by_target["/dev/shm"].flags) == ("shm", NSD)
    assert (by_target["/tmp"].flags, by_target["/tmp"].data) == (libc.MS_NOSUID | libc.MS_NODEV, "mode=1777")


def test_volumes_and_tmpfs_become_oci_mounts(tmp_path) -> None:
    ro = docker.volume(f"{tmp_path}:/x:ro")
    assert (ro.destination, ro.type, ro.source, ro.options) == ("/x", "bind", str(tmp_path), ["rbind", "ro"])
    flags, _, _, recursive = ro.flags_and_data()
    assert flags == libc.MS_BIND | libc.MS_REC | libc.MS_RDONLY and recursive
    # suid, dev and exec leave docker's nosuid/nodev as they are; ro and noexec are flags; the rest is data
    t = docker.tmpfs("/run:size=64m,suid,dev,exec,ro,noexec,uid=5")
    assert t.options == ["nosuid", "nodev", "ro", "noexec", "size=64m", "uid=5", "mode=1777"]
    flags, _, data, _ = t.flags_and_data()
    assert flags == libc.MS_NOSUID | libc.MS_NODEV | libc.MS_RDONLY | libc.MS_NOEXEC
    assert data == "size=64m,uid=5,mode=1777"
    assert docker.tmpfs("/run:mode=700").options == ["nosuid", "nodev", "mode=700"]


def test_a_bound_dev_gets_no_dev_of_ours(image) -> None:
    steps = rootfs.plan(run_config(image, mounts=[docker.volume("/dev:/dev")]))
    assert [t for t, _ in mounts(steps) if t.startswith("/dev")] == ["/dev"]
    assert not any(s.op in (default_devices, devices) for s in steps)


def test_read_only_privileged_and_image_tmp(image, tmp_path) -> None:
    (tmp_path / "low" / "tmp").mkdir()
    steps = rootfs.plan(run_config(image, read_only=True, cwd="/work", security={"privileged": True}))
    assert steps[-2:] == [Step(pivot_root), Step(readonly_root, "/work")]  # privileged: /proc stays writable
    assert "/tmp" not in [t for t, _ in mounts(steps)]  # the image has one


def test_rootless_policy(image, monkeypatch: pytest.MonkeyPatch) -> None:
    from pycontain import rootless

    monkeypatch.setattr(rootless, "active", lambda: True)
    monkeypatch.setattr(rootless, "cgroup_delegated", lambda: False)
    steps = rootfs.plan(run_config(image))
    targets = [t for t, _ in mounts(steps)]
    assert "/sys/fs/cgroup" not in targets  # no cgroup of its own to show
    assert targets[-2:] == ["/tmp", "/run"]  # scratch tmpfs where the image has the directory
    devpts = next(m for m in mount_steps(steps) if m.fstype == "devpts")
    assert "gid=5" not in devpts.data


def test_network_host_leaves_the_network_namespace_out(image) -> None:
    assert "network" not in run_config(image, network="host").namespaces
    assert run_config(image, network="none").namespaces["network"] == ""


def test_a_bundle_is_planned_from_its_own_mounts(tmp_path) -> None:
    (tmp_path / "rootfs").mkdir()
    doc = default_spec()
    doc["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    cfg = from_spec(parse(doc, str(tmp_path)), "c1", no_pivot=True)
    steps = rootfs.plan(cfg)
    assert steps[:2] == [Step(make_private), Step(bind_root, str(tmp_path / "rootfs"))]
    assert mounts(steps) == [(m["destination"], m["type"]) for m in doc["mounts"]]
    assert steps[-4:] == [
        Step(default_devices),
        Step(move_root),
        Step(sysctls, {"net.ipv4.ip_forward": "1"}),
        Step(readonly_root, "/"),
    ]


def test_without_a_mount_namespace_the_root_is_only_chrooted(tmp_path) -> None:
    (tmp_path / "rootfs").mkdir()
    doc = default_spec()
    doc["linux"]["namespaces"] = [{"type": "pid"}]
    for key in ("maskedPaths", "readonlyPaths"):
        del doc["linux"][key]
    doc["mounts"] = []
    doc["root"]["readonly"] = False
    del doc["hostname"]
    cfg = from_spec(parse(doc, str(tmp_path)), "c2")
    assert rootfs.plan(cfg) == [Step(chroot, str(tmp_path / "rootfs"))]


def test_both_roads_give_the_same_mounts(image) -> None:
    """A docker-style container's spec written out as a config.json and read back as a bundle plans the
    same mounts: one road from the spec on."""
    spec = docker.to_spec(
        image,
        ["true"],
        env=[],
        cwd="/",
        user=None,
        hostname=None,
        mounts=[docker.tmpfs("/cache")],
        read_only=False,
        resources=None,
        network=None,
        id_mappings=None,
    )
    docker_cfg = from_spec(spec, None, layers=image)
    bundle_cfg = from_spec(parse(spec.to_dict(), image[-1]), None)
    assert list(map(fields, docker_cfg.mounts)) == list(map(fields, bundle_cfg.mounts))
    assert [d.to_dict() for d in docker_cfg.devices] == [d.to_dict() for d in bundle_cfg.devices]
    assert [r.line() for r in docker_cfg.device_rules or []] == [
        r.line() for r in bundle_cfg.device_rules or []
    ]
    assert docker_cfg.resources == bundle_cfg.resources


def test_docker_user_is_looked_up_in_the_container(image) -> None:
    assert run_config(image).user == "0"  # root with its /etc/group memberships, not "0:0" (none)
    assert run_config(image, user="app:staff").user == "app:staff"


def test_replace_leaves_the_config_alone(image) -> None:
    cfg = run_config(image)
    other = cfg.replace(hostname="x", namespaces={})
    assert (cfg.hostname, other.hostname) == (None, "x")
    assert cfg.namespaces and not other.namespaces
    with pytest.raises(TypeError):
        cfg.replace(nonsense=1)


def test_a_config_is_frozen(image) -> None:
    cfg = run_config(image)
    with pytest.raises(AttributeError, match="replace"):
        cfg.hostname = "x"


def test_typed_fields_round_trip_through_the_state_file(image) -> None:
    from pycontain.cgroups.resources import Resources
    from pycontain.config import ContainerConfig
    from pycontain.security.options import SecurityOptions

    cfg = run_config(
        image, resources={"memory": {"limit": 64 << 20, "swappiness": 10}}, security={"cap_drop": ["ALL"]}
    )
    assert cfg.resources == Resources(memory=64 << 20)
    assert cfg.cgroup_writes == [("memory.swappiness", "memory", "memory.swappiness", "10")]
    assert isinstance(cfg.security, SecurityOptions) and cfg.security.cap_drop == ["ALL"]
    rules = [r.line() for r in cfg.device_rules or []]
    assert rules[0] == "a" and "c 1:3 rwm" in rules  # deny all, then the console and docker's defaults
    back = ContainerConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back.to_dict() == cfg.to_dict()
    assert back.resources == cfg.resources and isinstance(back.security, SecurityOptions)


def test_privileged_leaves_the_device_rules_alone(image) -> None:
    assert run_config(image, security={"privileged": True}).device_rules is None


def test_bad_extra_resources_fail_at_conversion(image) -> None:
    with pytest.raises(InvalidArgument, match="swappiness"):
        run_config(image, resources={"memory": {"swappiness": 500}})


def test_network_policy_is_decided_in_the_docker_road() -> None:
    from pycontain.errors import PermissionDenied

    assert docker.network_for(None, rootless=False) == "bridge"  # docker's default
    assert docker.network_for("host", rootless=False) == "host"
    assert docker.network_for(None, rootless=True) == "none"  # a rootless container: loopback only
    assert docker.network_for("host", rootless=True) == "host"
    with pytest.raises(PermissionDenied, match="rootless containers get none"):
        docker.network_for("bridge", rootless=True)


def test_id_mappings_are_typed_and_round_trip(image, tmp_path) -> None:
    from pycontain.config import ContainerConfig
    from pycontain.userns import IdMappings

    maps = IdMappings([(0, 100000, 65536)], [(0, 100000, 65536)])
    cfg = run_config(image, id_mappings=maps)
    assert cfg.namespaces["user"] == "" and cfg.id_mappings == maps
    assert cfg.id_mappings.host_root() == (100000, 100000)
    assert rootfs.plan(cfg)[1] == Step(overlay_root, image, maps, False)
    (tmp_path / "rootfs").mkdir()
    doc = default_spec()
    doc["mounts"].append(
        {
            "destination": "/data",
            "type": "bind",
            "source": str(tmp_path),
            "options": ["rbind"],
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
        }
    )
    bundle = from_spec(parse(doc, str(tmp_path)), "c3")
    back = ContainerConfig.from_dict(json.loads(json.dumps(bundle.to_dict())))
    assert back.mounts[-1].id_mappings == IdMappings([(0, 1000, 1)], [(0, 1000, 1)])
    assert back.to_dict() == bundle.to_dict()
