"""pycontain.spec: config.json parsing and validation (pure Python, no root, nothing mounted)."""

from __future__ import annotations

import copy
import json
import os

import pytest

from pycontain import SPEC_VERSION
from pycontain import spec as oci
from pycontain.errors import ConfigError, InvalidArgument, NotFound, PycontainError, Unsupported
from pycontain.libc import (
    MS_BIND,
    MS_DIRSYNC,
    MS_MANDLOCK,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
    MS_UNBINDABLE,
)
from pycontain.security.caps import CAPABILITIES, DEFAULT_CAPABILITIES
from pycontain.security.options import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS
from pycontain.spec import (
    OciMount,
    default_spec,
    load_bundle,
    parse,
)

BUNDLE = "/srv/bundles/web"


@pytest.fixture(autouse=True)
def _no_lsm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Host detection is pinned so the tests mean the same on every machine."""
    monkeypatch.setattr(oci.bundle, "_apparmor_enabled", lambda: False)
    monkeypatch.setattr(oci.bundle, "_selinux_enabled", lambda: False)


def base() -> dict:
    return copy.deepcopy(default_spec())


def write_bundle(tmp_path, doc: dict | str, rootfs: str | None = "rootfs") -> str:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    if rootfs:
        (bundle / rootfs).mkdir(parents=True)
    text = doc if isinstance(doc, str) else json.dumps(doc, indent=2)
    (bundle / "config.json").write_text(text)
    return str(bundle)


def error_of(doc: dict, kind: type[PycontainError] = ConfigError) -> str:
    with pytest.raises(kind) as info:
        parse(doc, BUNDLE)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- default_spec ---------------------------------------------------------------------------------
def test_default_spec_parses_and_round_trips() -> None:
    doc = default_spec()
    json.dumps(doc)  # JSON-able as written by `pycontain spec`
    spec = parse(doc, BUNDLE)
    assert spec.warnings == []
    assert spec.oci_version == SPEC_VERSION
    assert spec.root_path == "/srv/bundles/web/rootfs" and spec.root_readonly
    assert spec.hostname == "pycontain"
    p = spec.process
    assert p.args == ["sh"] and p.terminal and p.cwd == "/" and (p.uid, p.gid) == (0, 0)
    assert p.no_new_privileges
    assert p.rlimits == [("RLIMIT_NOFILE", 1024, 1024)]
    assert sorted(p.capabilities["bounding"]) == sorted(DEFAULT_CAPABILITIES)
    assert len(DEFAULT_CAPABILITIES) == 14
    for name in ("effective", "permitted"):
        assert p.capabilities[name] == p.capabilities["bounding"]
    assert p.capabilities["inheritable"] == [] and p.capabilities["ambient"] == []
    assert list(spec.namespaces) == ["pid", "network", "ipc", "uts", "mount", "cgroup"]
    assert set(spec.namespaces.values()) == {""}
    assert [m.destination for m in spec.mounts] == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
    ]
    assert spec.mounts[1].options == ["nosuid", "strictatime", "mode=755", "size=65536k"]
    assert "ro" in spec.mounts[5].options and "ro" in spec.mounts[6].options
    assert spec.masked_paths == list(oci.DEFAULT_MASKED_PATHS)
    assert spec.readonly_paths == list(oci.DEFAULT_READONLY_PATHS)
    # one list: what a docker-style container masks, side channels on the host's activity included
    assert (
        oci.DEFAULT_MASKED_PATHS is DEFAULT_MASKED_PATHS
        and oci.DEFAULT_READONLY_PATHS is DEFAULT_READONLY_PATHS
    )
    assert {"/proc/interrupts", "/sys/devices/virtual/powercap"} <= set(spec.masked_paths)
    # the normalised form reads back to itself
    again = parse(json.loads(json.dumps(spec.to_dict())), "/elsewhere")
    assert again.to_dict() == spec.to_dict()


def test_default_spec_args() -> None:
    assert parse(default_spec(args=["httpd", "-f"]), BUNDLE).process.args == ["httpd", "-f"]


def test_rootless_default_spec() -> None:
    doc = default_spec(rootless=True)
    spec = parse(doc, BUNDLE)
    assert "network" not in spec.namespaces  # as runc spec --rootless
    assert spec.namespaces["user"] == "" and "cgroup" in spec.namespaces
    assert spec.uid_mappings == [(0, os.geteuid(), 1)]
    assert spec.gid_mappings == [(0, os.getegid(), 1)]
    sys_mount = next(m for m in spec.mounts if m.destination == "/sys")
    assert sys_mount.is_bind and sys_mount.source == "/sys"
    assert sys_mount.options == ["rbind", "nosuid", "noexec", "nodev", "ro"]
    assert not any(o.startswith(("uid=", "gid=")) for m in spec.mounts for o in m.options)
    assert spec.resources is None
    assert parse(spec.to_dict(), BUNDLE).to_dict() == spec.to_dict()


# -- load_bundle ----------------------------------------------------------------------------------
def test_load_bundle_resolves_root_against_the_bundle(tmp_path) -> None:
    bundle = write_bundle(tmp_path, default_spec())
    spec = load_bundle(bundle)
    assert spec.root_path == os.path.join(bundle, "rootfs")
    assert spec.bundle == bundle


def test_load_bundle_relative_bundle_and_root(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = default_spec()
    doc["root"]["path"] = "../images/alpine/./rootfs"
    bundle = write_bundle(tmp_path, doc, rootfs=None)
    (tmp_path / "images" / "alpine" / "rootfs").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    spec = load_bundle("bundle")
    assert spec.root_path == str(tmp_path / "images" / "alpine" / "rootfs")
    assert os.path.isabs(spec.root_path) and spec.bundle == bundle


def test_absolute_root_path_is_kept() -> None:
    doc = base()
    doc["root"]["path"] = "/var/lib/containers/storage/overlay/abc/merged"
    assert parse(doc, BUNDLE).root_path == "/var/lib/containers/storage/overlay/abc/merged"


def test_bind_sources_resolve_against_the_bundle() -> None:
    doc = base()
    doc["mounts"] += [
        {"destination": "/data", "type": "bind", "source": "data", "options": ["rbind", "ro"]},
        {"destination": "/etc/hosts", "source": "/etc/hosts", "options": ["bind"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]},
    ]
    data, hosts, tmp = parse(doc, BUNDLE).mounts[-3:]
    assert data.source == "/srv/bundles/web/data"
    assert hosts.source == "/etc/hosts"
    assert tmp.source == "tmpfs"  # not a path: left alone


def test_missing_bundle_dir(tmp_path) -> None:
    with pytest.raises(NotFound) as info:
        load_bundle(str(tmp_path / "nope"))
    assert str(tmp_path / "nope") in str(info.value) and "pycontain spec" in str(info.value)


def test_missing_config_json(tmp_path) -> None:
    with pytest.raises(NotFound) as info:
        load_bundle(str(tmp_path))
    message = str(info.value)
    assert str(tmp_path) in message
    assert "run 'pycontain spec' in the bundle directory to write one" in message


def test_missing_rootfs_dir(tmp_path) -> None:
    bundle = write_bundle(tmp_path, default_spec(), rootfs=None)
    with pytest.raises(NotFound) as info:
        load_bundle(bundle)
    assert str(info.value).startswith("config.json: root.path: ")
    assert os.path.join(bundle, "rootfs") in str(info.value)


def test_malformed_json_names_line_and_column(tmp_path) -> None:
    bundle = write_bundle(
        tmp_path, '{\n  "ociVersion": "1.2.0",\n  "root": {"path": "rootfs"}\n  "x": 1\n}\n'
    )
    with pytest.raises(ConfigError) as info:
        load_bundle(bundle)
    message = str(info.value)
    assert message.startswith("config.json: invalid JSON at line 4, column 3: ")
    assert "\n" not in message


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "config.json: invalid JSON at line 1, column 1"),
        ("[1, 2]", "config.json: must be a JSON object, not a list"),
        ('{"a": 1} trailing', "config.json: invalid JSON at line 1, column 10"),
    ],
)
def test_not_a_document(tmp_path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_bundle(write_bundle(tmp_path, text))
    assert str(info.value).startswith(expected)


def test_not_utf8(tmp_path) -> None:
    bundle = write_bundle(tmp_path, "{}")
    with open(os.path.join(bundle, "config.json"), "wb") as f:
        f.write(b'{"ociVersion": "1.2.0\xff"}')
    with pytest.raises(ConfigError, match=r"^config\.json: not UTF-8 text"):
        load_bundle(bundle)


# -- ociVersion -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "version",
    [
        "1.0.0",
        "1.0.2",
        "1.1.0",
        "1.2.0",
        "1.2.1",
        "1.3.0",
        "1.0.0-rc5",
        "1.0.2-dev",
        "1.1.0-rc.1",
        "1.2.0+build.7",
    ],
)
def test_versions_accepted(version: str) -> None:
    doc = base()
    doc["ociVersion"] = version
    spec = parse(doc, BUNDLE)
    assert spec.oci_version == version and spec.warnings == []


def test_newer_minor_version_is_accepted_with_a_warning() -> None:
    doc = base()
    doc["ociVersion"] = "1.4.0"
    assert any("1.4.0" in w for w in parse(doc, BUNDLE).warnings)


@pytest.mark.parametrize(
    "version, kind",
    [
        ("2.0.0", Unsupported),
        ("0.5.0-dev", Unsupported),
        ("abc", ConfigError),
        ("1.0", ConfigError),
        ("1.0.0-", ConfigError),
        ("v1.0.0", ConfigError),
        (1, ConfigError),
        ("", ConfigError),
    ],
)
def test_versions_refused(version: object, kind: type[PycontainError]) -> None:
    doc = base()
    doc["ociVersion"] = version
    assert error_of(doc, kind).startswith("config.json: ociVersion: ")


def test_version_required() -> None:
    doc = base()
    del doc["ociVersion"]
    assert error_of(doc).startswith("config.json: ociVersion: required")


# -- validation: each error names its field -------------------------------------------------------
def _set(path: str, value: object):
    """A mutation that sets ``path`` (dots and [index]) to ``value``; DELETE removes it."""

    def mutate(doc: dict) -> None:
        keys: list = []
        for part in path.split("."):
            name, _, rest = part.partition("[")
            keys.append(name)
            if rest:
                keys.append(int(rest.rstrip("]")))
        target = doc
        for k in keys[:-1]:
            target = target[k]
        if value is DELETE:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value

    return mutate


DELETE = object()


def _add_ns(ns: dict):
    return lambda doc: doc["linux"]["namespaces"].append(ns)


def _add_mount(m: dict):
    return lambda doc: doc["mounts"].append(m)


def _user_ns(**linux):
    def mutate(doc: dict) -> None:
        doc["linux"]["namespaces"].append({"type": "user"})
        doc["linux"].update(linux)

    return mutate


MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]

INVALID = [
    # (mutation, the message's start)
    (_set("process.args", []), "config.json: process.args: must be a non-empty list of strings"),
    (_set("process.args", DELETE), "config.json: process.args: must be a non-empty list of strings"),
    (_set("process.args", "sh -c true"), "config.json: process.args: must be a non-empty list of strings"),
    (_set("process.args", ["sh", 3]), "config.json: process.args[1]: must be a string, not the number 3"),
    (_set("process.cwd", DELETE), "config.json: process.cwd: required"),
    (_set("process.cwd", "work"), "config.json: process.cwd: must be an absolute path"),
    (_set("process.terminal", "yes"), "config.json: process.terminal: must be true or false"),
    (_set("process.env", ["PATH"]), "config.json: process.env[0]: must be KEY=VALUE"),
    (_set("process.env", "A=1"), "config.json: process.env: must be a list"),
    (_set("process.user.uid", -1), "config.json: process.user.uid: must be an integer from 0 to 4294967294"),
    (_set("process.user.uid", 4294967295), "config.json: process.user.uid: must be an integer"),
    (_set("process.user.gid", 1 << 40), "config.json: process.user.gid: must be an integer"),
    (_set("process.user.gid", "0"), "config.json: process.user.gid: must be an integer"),
    (_set("process.user.uid", True), "config.json: process.user.uid: must be an integer"),
    (_set("process.user.additionalGids", [5, -2]), "config.json: process.user.additionalGids[1]: "),
    (_set("process.user.umask", 0o1000), "config.json: process.user.umask: must be an integer from 0 to 511"),
    (_set("process.consoleSize", {"height": 24}), "config.json: process.consoleSize.width: "),
    (
        _set("process.oomScoreAdj", 1001),
        "config.json: process.oomScoreAdj: must be an integer from -1000 to 1000",
    ),
    (_set("process.capabilities", ["CAP_KILL"]), "config.json: process.capabilities: must be an object"),
    (
        _set("process.capabilities.bounding[2]", "CAP_FLY"),
        "config.json: process.capabilities.bounding[2]: unknown capability 'CAP_FLY'",
    ),
    (
        _set("process.capabilities.effective", ["NET_ADMIN"]),
        "config.json: process.capabilities.effective[0]: unknown capability 'NET_ADMIN' (did you mean CAP_NET_ADMIN?)",
    ),
    (
        _set("process.capabilities.ambient", ["cap_kill"]),
        "config.json: process.capabilities.ambient[0]: unknown capability 'cap_kill' (did you mean CAP_KILL?)",
    ),
    (
        _set("process.rlimits[0].type", "NOFILE"),
        "config.json: process.rlimits[0].type: unknown rlimit 'NOFILE' (did you mean RLIMIT_NOFILE?)",
    ),
    (
        _set("process.rlimits[0].type", "rlimit_nofile"),
        "config.json: process.rlimits[0].type: unknown rlimit 'rlimit_nofile' (did you mean RLIMIT_NOFILE?)",
    ),
    (_set("process.rlimits[0].type", "RLIMIT_FOO"), "config.json: process.rlimits[0].type: unknown rlimit"),
    (
        _set("process.rlimits[0].soft", 4096),
        "config.json: process.rlimits[0].soft: 4096 is above the hard limit 1024",
    ),
    (_set("process.rlimits[0].hard", DELETE), "config.json: process.rlimits[0].hard: required"),
    (_set("process.rlimits[0].hard", 1 << 64), "config.json: process.rlimits[0].hard: must be an integer"),
    (
        _set("process.rlimits", [{"type": "RLIMIT_CORE", "soft": 0, "hard": 0}] * 2),
        "config.json: process.rlimits[1].type: duplicate rlimit RLIMIT_CORE (already set by process.rlimits[0])",
    ),
    (_set("process", "sh"), "config.json: process: must be an object, not the string 'sh'"),
    (_set("root", DELETE), "config.json: root.path: required"),
    (_set("root.path", DELETE), "config.json: root.path: required"),
    (_set("root.path", ""), "config.json: root.path: must not be empty"),
    (_set("root.path", ["rootfs"]), "config.json: root.path: must be a string, not a list"),
    (_set("root.readonly", 1), "config.json: root.readonly: must be true or false"),
    (_set("hostname", 7), "config.json: hostname: must be a string"),
    (_set("hostname", "h" * 65), "config.json: hostname: at most 64 bytes"),
    (
        _set("linux.namespaces[3]", {"type": "ipc"}),
        "config.json: linux.namespaces[3].type: duplicate ipc namespace (already given by linux.namespaces[2])",
    ),
    (_set("mounts", {}), "config.json: mounts: must be a list, not an object"),
    (
        _set("mounts[2].destination", "dev/pts"),
        "config.json: mounts[2].destination: must be an absolute path",
    ),
    (_set("mounts[2].destination", DELETE), "config.json: mounts[2].destination: required"),
    (_set("mounts[2].options", "nosuid"), "config.json: mounts[2].options: must be a list"),
    (_set("mounts[2].options[1]", 1), "config.json: mounts[2].options[1]: must be a string"),
    (
        _set("mounts[0].type", DELETE),
        "config.json: mounts[0].type: required for a mount that is not a bind mount",
    ),
    (
        _add_mount({"destination": "/data", "type": "bind"}),
        "config.json: mounts[7].source: required for a bind mount",
    ),
    (
        _set("linux.namespaces[2].type", "foo"),
        "config.json: linux.namespaces[2].type: unknown namespace type 'foo' (use one of pid, network, mount, ipc, uts, "
        "user, cgroup, time)",
    ),
    (_set("linux.namespaces[1].type", DELETE), "config.json: linux.namespaces[1].type: required"),
    (
        _set("linux.namespaces[1].path", "run/netns/x"),
        "config.json: linux.namespaces[1].path: must be an absolute path",
    ),
    (_set("linux.namespaces", "pid"), "config.json: linux.namespaces: must be a list"),
    (
        _set("linux.namespaces[4]", {"type": "time"}),
        "config.json: mounts: needs a mount namespace of the container's own",
    ),
    (_set("linux", DELETE), "config.json: hostname: setting one needs a uts namespace"),
    (_set("linux.namespaces[3].type", "time"), "config.json: hostname: setting one needs a uts namespace"),
    (
        _add_ns({"type": "user"}),
        "config.json: linux.uidMappings: a new user namespace needs both uidMappings and ",
    ),
    (_user_ns(uidMappings=MAP), "config.json: linux.gidMappings: a new user namespace needs both"),
    (_set("linux.uidMappings", MAP), "config.json: linux.uidMappings: id mappings need a user namespace"),
    (
        _user_ns(uidMappings=[{"containerID": 0, "hostID": 1000}], gidMappings=MAP),
        "config.json: linux.uidMappings[0].size: required",
    ),
    (
        _user_ns(uidMappings=[{"containerID": 0, "hostID": -1, "size": 1}], gidMappings=MAP),
        "config.json: linux.uidMappings[0].hostID: must be an integer from 0 to 4294967295",
    ),
    (
        _user_ns(uidMappings=MAP, gidMappings=[{"containerID": 0, "hostID": 1000, "size": 0}]),
        "config.json: linux.gidMappings[0].size: must be an integer from 1 ",
    ),
    (
        _user_ns(uidMappings=[{"containerID": 0, "hostID": 4294967295, "size": 2}], gidMappings=MAP),
        "config.json: linux.uidMappings[0].size: hostID 4294967295 + size 2 runs past 4294967295",
    ),
    (
        _user_ns(uidMappings=MAP + [{"containerID": 100, "hostID": 0, "size": 1}], gidMappings=MAP),
        "config.json: linux.uidMappings[1]: container ids 100-100 overlap linux.uidMappings[0]",
    ),
    (
        _set("linux.devices", [{"path": "dev/fuse", "type": "c", "major": 10, "minor": 229}]),
        "config.json: linux.devices[0].path: must be an absolute path",
    ),
    (
        _set("linux.devices", [{"path": "/dev/fuse", "type": "x", "major": 10, "minor": 229}]),
        "config.json: linux.devices[0].type: unknown device type 'x' (use c, b, u or p)",
    ),
    (
        _set("linux.devices", [{"path": "/dev/fuse", "type": "c", "major": 10}]),
        "config.json: linux.devices[0].minor: required for a device of type c",
    ),
    (
        _set("linux.devices", [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "uid": -1}]),
        "config.json: linux.devices[0].uid: must be an integer",
    ),
    (
        _set(
            "linux.devices",
            [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o10000}],
        ),
        "config.json: linux.devices[0].fileMode: must be an integer from 0 to 4095",
    ),
    (_set("linux.resources", []), "config.json: linux.resources: must be an object"),
    (
        _set("linux.resources.memory", {"limit": "1g"}),
        "config.json: linux.resources: memory.limit must be an integer",
    ),
    (
        _set("linux.resources.memory", {"limit": 1 << 30, "swap": 1 << 20}),
        "config.json: linux.resources: invalid memory-swap: ",
    ),
    (_set("linux.cgroupsPath", 5), "config.json: linux.cgroupsPath: must be a string"),
    (
        _set("linux.cgroupsPath", "/pycontain/../../escape"),
        "config.json: linux.cgroupsPath: must not contain '..'",
    ),
    (
        _set("linux.sysctl", {"net.ipv4.ip_forward": 1}),
        'config.json: linux.sysctl["net.ipv4.ip_forward"]: must be a string, not the number 1',
    ),
    (
        _set("linux.sysctl", {"vm.swappiness": "10"}),
        'config.json: linux.sysctl["vm.swappiness"]: not a namespaced sysctl',
    ),
    (
        lambda d: (
            d["linux"]["namespaces"].pop(1),
            d["linux"].__setitem__("sysctl", {"net.core.somaxconn": "256"}),
        ),
        'config.json: linux.sysctl["net.core.somaxconn"]: needs a network namespace',
    ),
    (
        _set("linux.maskedPaths", ["proc/kcore"]),
        "config.json: linux.maskedPaths[0]: must be an absolute path",
    ),
    (_set("linux.readonlyPaths", "/proc/sys"), "config.json: linux.readonlyPaths: must be a list"),
    (
        _set("linux.rootfsPropagation", "recursive"),
        "config.json: linux.rootfsPropagation: unknown propagation",
    ),
    (_set("linux.seccomp", {"syscalls": []}), "config.json: linux.seccomp.defaultAction: required"),
    (
        _set("linux.seccomp", {"defaultAction": "ALLOW"}),
        "config.json: linux.seccomp.defaultAction: unknown action",
    ),
    (
        _set(
            "linux.seccomp",
            {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]},
        ),
        "config.json: linux.seccomp.syscalls[0].names: must be a non-empty list",
    ),
    (
        _set(
            "linux.seccomp",
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {
                        "names": ["personality"],
                        "action": "SCMP_ACT_ALLOW",
                        "args": [{"index": 0, "value": 8, "op": "EQ"}],
                    }
                ],
            },
        ),
        "config.json: linux.seccomp.syscalls[0].args[0].op: unknown operator 'EQ'",
    ),
    (
        _set("linux.personality", {"domain": "BSD"}),
        "config.json: linux.personality.domain: unknown domain 'BSD'",
    ),
    (
        _set("linux.timeOffsets", {"monotonic": {"secs": 10}}),
        "config.json: linux.timeOffsets: needs a new time namespace",
    ),
    (
        lambda d: (
            d["linux"]["namespaces"].append({"type": "time"}),
            d["linux"].__setitem__("timeOffsets", {"realtime": {"secs": 1}}),
        ),
        'config.json: linux.timeOffsets["realtime"]: unknown clock',
    ),
    (
        _set("hooks", {"prestart": [{"path": "hooks/setup"}]}),
        "config.json: hooks.prestart[0].path: must be an absolute path, not 'hooks/setup'",
    ),
    (_set("hooks", {"poststop": [{"args": ["x"]}]}), "config.json: hooks.poststop[0].path: required"),
    (
        _set("hooks", {"createRuntime": [{"path": "/bin/true", "timeout": 0}]}),
        "config.json: hooks.createRuntime[0].timeout: must be an integer from 1 ",
    ),
    (
        _set("hooks", {"poststart": [{"path": "/bin/true", "env": ["=x"]}]}),
        "config.json: hooks.poststart[0].env[0]: must be KEY=VALUE",
    ),
    (_set("annotations", {"a": 1}), 'config.json: annotations["a"]: must be a string'),
    (_set("annotations", {"": "x"}), "config.json: annotations: keys must not be empty"),
]


@pytest.mark.parametrize("mutate, expected", INVALID, ids=[e[1][13:60] for e in INVALID])
def test_invalid_field_is_named(mutate, expected: str) -> None:
    doc = base()
    mutate(doc)
    message = error_of(doc)
    assert message.startswith(expected), message


def test_config_errors_are_invalid_arguments() -> None:
    doc = base()
    doc["process"]["args"] = []
    with pytest.raises(InvalidArgument):
        parse(doc, BUNDLE)


def test_not_an_object() -> None:
    with pytest.raises(ConfigError, match=r"^config\.json: must be a JSON object, not a list"):
        parse([], BUNDLE)  # type: ignore[arg-type]


# -- unsupported ----------------------------------------------------------------------------------
UNSUPPORTED = [
    ("linux.intelRdt", lambda d: d["linux"].__setitem__("intelRdt", {"closID": "guaranteed_group"})),
    ("linux.netDevices", lambda d: d["linux"].__setitem__("netDevices", {"eth1": {"name": "eth0"}})),
    ("process.execCPUAffinity", lambda d: d["process"].__setitem__("execCPUAffinity", {"initial": "0"})),
    ("windows", lambda d: d.__setitem__("windows", {"layerFolders": ["C:\\layers"]})),
    ("solaris", lambda d: d.__setitem__("solaris", {"milestone": "svc:/milestone/container:default"})),
    ("vm", lambda d: d.__setitem__("vm", {"kernel": {"path": "/boot/vmlinuz"}})),
    ("zos", lambda d: d.__setitem__("zos", {"devices": [{"path": "/dev/zfoo", "type": "c"}]})),
    ("freebsd", lambda d: d.__setitem__("freebsd", {"jail": {"parent": "host"}})),
]


@pytest.mark.parametrize("field, mutate", UNSUPPORTED, ids=[u[0] for u in UNSUPPORTED])
def test_unsupported_fields_are_refused(field: str, mutate) -> None:
    doc = base()
    mutate(doc)
    message = error_of(doc, Unsupported)
    assert message.startswith(f"config.json: {field}: ")
    assert "not supported" in message


def test_unsupported_fields_list_names_the_platform_sections() -> None:
    for field in ("linux.intelRdt", "linux.netDevices", "windows", "solaris", "vm", "zos"):
        assert field in oci.UNSUPPORTED_FIELDS


@pytest.mark.parametrize("value", [None, {}])
def test_empty_unsupported_sections_are_ignored(value: object) -> None:
    doc = base()
    doc["linux"]["intelRdt"] = value
    doc["windows"] = value
    parse(doc, BUNDLE)


def test_unknown_properties_are_ignored() -> None:
    doc = base()
    doc["x-vendor"] = {"anything": [1, 2]}
    doc["process"]["commandLine"] = "cmd.exe"  # Windows-only
    doc["linux"]["futureThing"] = True
    parse(doc, BUNDLE)


# -- accepted with warnings -----------------------------------------------------------------------
def test_lsm_labels_warn_when_the_host_lacks_the_lsm() -> None:
    doc = base()
    doc["process"]["apparmorProfile"] = "containers-default-0.50.1"
    doc["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0:c1,c2"
    doc["linux"]["mountLabel"] = "system_u:object_r:container_file_t:s0:c1,c2"
    spec = parse(doc, BUNDLE)
    assert spec.process.apparmor_profile == "containers-default-0.50.1"
    assert spec.process.selinux_label.startswith("system_u:system_r")
    assert spec.mount_label.startswith("system_u:object_r")
    assert any(
        w.startswith("apparmor profile 'containers-default-0.50.1' ignored: this host has no AppArmor")
        for w in spec.warnings
    )
    assert sum("no SELinux" in w for w in spec.warnings) == 2


def test_lsm_labels_do_not_warn_when_the_host_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oci.bundle, "_apparmor_enabled", lambda: True)
    doc = base()
    doc["process"]["apparmorProfile"] = "docker-default"
    assert parse(doc, BUNDLE).warnings == []


def test_tmpcopyup_is_accepted_with_a_warning() -> None:
    doc = base()
    doc["mounts"].append(
        {
            "destination": "/tmp",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"],
        }
    )
    spec = parse(doc, BUNDLE)
    assert any("tmpcopyup" in w and "/tmp" in w for w in spec.warnings)
    flags, propagation, data, _ = spec.mounts[-1].flags_and_data()
    assert data == "" and flags == MS_NOSUID | MS_NODEV and propagation == [MS_PRIVATE | MS_REC]


def test_joined_user_namespace_ignores_mappings_with_a_warning() -> None:
    doc = base()
    doc["linux"]["namespaces"].append({"type": "user", "path": "/proc/4242/ns/user"})
    doc["linux"]["uidMappings"] = MAP
    spec = parse(doc, BUNDLE)
    assert spec.namespaces["user"] == "/proc/4242/ns/user"
    assert any("joined" in w for w in spec.warnings)


def test_joined_user_namespace_without_mappings() -> None:
    doc = base()
    doc["linux"]["namespaces"].append({"type": "user", "path": "/proc/4242/ns/user"})
    assert parse(doc, BUNDLE).warnings == []


# -- the model ------------------------------------------------------------------------------------
def test_full_model() -> None:
    doc = base()
    doc["process"].update(
        {
            "consoleSize": {"height": 40, "width": 120},
            "user": {"uid": 1000, "gid": 1000, "umask": 0o22, "additionalGids": [10, 20]},
            "oomScoreAdj": -500,
            "env": ["A=1", "B=x=y", "C="],
        }
    )
    doc["domainname"] = "example.org"
    doc["hooks"] = {
        "createRuntime": [
            {"path": "/usr/bin/netns-setup", "args": ["netns-setup", "--up"], "env": ["X=1"], "timeout": 5}
        ],
        "poststop": [{"path": "/usr/bin/cleanup"}],
    }
    doc["linux"].update(
        {
            "devices": [
                {
                    "path": "/dev/fuse",
                    "type": "c",
                    "major": 10,
                    "minor": 229,
                    "fileMode": 0o666,
                    "uid": 0,
                    "gid": 0,
                },
                {"path": "/dev/fifo", "type": "p"},
            ],
            "sysctl": {
                "net.ipv4.ip_forward": "1",
                "kernel.shmmax": "68719476736",
                "fs.mqueue.msg_max": "100",
            },
            "rootfsPropagation": "rslave",
            "personality": {"domain": "LINUX32"},
            "cgroupsPath": "/pycontain/web",
        }
    )
    doc["linux"]["namespaces"].append({"type": "time"})
    doc["linux"]["timeOffsets"] = {"monotonic": {"secs": 86400, "nanosecs": 5}, "boottime": {"secs": -1}}
    spec = parse(doc, BUNDLE)
    p = spec.process
    assert p.console_size == (40, 120)
    assert (p.uid, p.gid, p.umask, p.additional_gids) == (1000, 1000, 0o22, [10, 20])
    assert p.oom_score_adj == -500 and p.env == ["A=1", "B=x=y", "C="]
    assert spec.domainname == "example.org"
    (hook,) = spec.hooks["createRuntime"]
    assert (hook.path, hook.args, hook.env, hook.timeout) == (
        "/usr/bin/netns-setup",
        ["netns-setup", "--up"],
        ["X=1"],
        5,
    )
    assert spec.hooks["poststop"][0].timeout is None and spec.hooks["prestart"] == []
    fuse, fifo = spec.devices
    assert (fuse.path, fuse.type, fuse.major, fuse.minor, fuse.file_mode, fuse.uid) == (
        "/dev/fuse",
        "c",
        10,
        229,
        0o666,
        0,
    )
    assert (fifo.major, fifo.minor, fifo.file_mode, fifo.uid) == (0, 0, None, None)
    assert spec.sysctl["net.ipv4.ip_forward"] == "1"
    assert spec.rootfs_propagation == "rslave" and spec.personality == {"domain": "LINUX32"}
    assert spec.time_offsets is not None and spec.time_offsets.monotonic == (86400, 5)
    assert spec.time_offsets.boottime == (-1, 0)
    assert spec.cgroups_path == "/pycontain/web"
    assert spec.resources == {"devices": [{"allow": False, "access": "rwm"}]}
    assert parse(spec.to_dict(), "/").to_dict() == spec.to_dict()
    json.dumps(spec.to_dict())


def test_absent_optional_sections() -> None:
    doc = {"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "linux": {"namespaces": [{"type": "mount"}]}}
    spec = parse(doc, BUNDLE)
    assert spec.process is None and spec.mounts == [] and spec.hostname is None
    assert spec.masked_paths is None and spec.readonly_paths is None  # runtime defaults apply
    assert spec.resources is None and spec.seccomp is None and spec.cgroups_path is None
    assert spec.hooks == {k: [] for k in oci.HOOK_KINDS}
    assert spec.raw is doc


def test_empty_masked_paths_are_kept_empty() -> None:
    doc = base()
    doc["linux"]["maskedPaths"] = []
    assert parse(doc, BUNDLE).masked_paths == []


def test_capabilities_absent_is_none() -> None:
    doc = base()
    del doc["process"]["capabilities"]
    assert parse(doc, BUNDLE).process.capabilities is None


# -- mount options --------------------------------------------------------------------------------
FLAG_TABLE = [
    ("ro", MS_RDONLY),
    ("nosuid", MS_NOSUID),
    ("nodev", MS_NODEV),
    ("noexec", MS_NOEXEC),
    ("sync", MS_SYNCHRONOUS),
    ("remount", MS_REMOUNT),
    ("mand", MS_MANDLOCK),
    ("dirsync", MS_DIRSYNC),
    ("noatime", MS_NOATIME),
    ("nodiratime", MS_NODIRATIME),
    ("relatime", MS_RELATIME),
    ("strictatime", MS_STRICTATIME),
    ("bind", MS_BIND),
    ("rbind", MS_BIND | MS_REC),
]
CLEAR_TABLE = [  # (sets, clears)
    ("ro", "rw"),
    ("nosuid", "suid"),
    ("nodev", "dev"),
    ("noexec", "exec"),
    ("sync", "async"),
    ("mand", "nomand"),
    ("noatime", "atime"),
    ("nodiratime", "diratime"),
    ("relatime", "norelatime"),
    ("strictatime", "nostrictatime"),
]
PROPAGATION_TABLE = [
    ("private", MS_PRIVATE),
    ("rprivate", MS_PRIVATE | MS_REC),
    ("shared", MS_SHARED),
    ("rshared", MS_SHARED | MS_REC),
    ("slave", MS_SLAVE),
    ("rslave", MS_SLAVE | MS_REC),
    ("unbindable", MS_UNBINDABLE),
    ("runbindable", MS_UNBINDABLE | MS_REC),
]


@pytest.mark.parametrize("option, flag", FLAG_TABLE)
def test_flag_options(option: str, flag: int) -> None:
    assert OciMount("/m", "tmpfs", "tmpfs", [option]).flags_and_data() == (flag, [], "", option == "rbind")


@pytest.mark.parametrize("option, clear", CLEAR_TABLE)
def test_clearing_options(option: str, clear: str) -> None:
    set_flag = oci.MOUNT_FLAGS[option][1]
    assert OciMount("/m", "tmpfs", "tmpfs", [option, clear]).flags_and_data()[0] == 0
    assert OciMount("/m", "tmpfs", "tmpfs", [clear, option]).flags_and_data()[0] == set_flag
    assert OciMount("/m", "tmpfs", "tmpfs", [clear]).flags_and_data()[0] == 0


@pytest.mark.parametrize("option, flag", PROPAGATION_TABLE)
def test_propagation_options(option: str, flag: int) -> None:
    assert OciMount("/m", "tmpfs", "tmpfs", [option]).flags_and_data() == (0, [flag], "", False)


def test_everything_else_goes_to_data_in_order() -> None:
    m = OciMount(
        "/dev/pts",
        "devpts",
        "devpts",
        ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5", "defaults"],
    )
    assert m.flags_and_data() == (
        MS_NOSUID | MS_NOEXEC,
        [],
        "newinstance,ptmxmode=0666,mode=0620,gid=5",
        False,
    )


def test_combined_bind_mount() -> None:
    m = OciMount("/data", "bind", "/srv/data", ["rbind", "rprivate", "ro", "nosuid", "rslave"])
    flags, propagation, data, recursive = m.flags_and_data()
    assert flags == MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID
    assert propagation == [MS_PRIVATE | MS_REC, MS_SLAVE | MS_REC]
    assert data == "" and recursive


def test_type_bind_without_a_bind_option_is_a_plain_bind() -> None:
    m = OciMount("/data", "bind", "/srv/data", ["ro"])
    assert m.is_bind
    assert m.flags_and_data() == (MS_BIND | MS_RDONLY, [], "", False)


def test_bind_option_makes_any_type_a_bind() -> None:
    assert OciMount("/sys", "none", "/sys", ["rbind"]).is_bind
    assert not OciMount("/tmp", "tmpfs", "tmpfs", ["mode=1777"]).is_bind


def test_constants_match_the_kernel() -> None:
    assert (MS_SHARED, MS_UNBINDABLE, MS_RELATIME, MS_NOATIME) == (1 << 20, 1 << 17, 1 << 21, 1024)


def test_recursive_options_become_mount_attributes_not_data() -> None:
    m = OciMount("/m", "bind", "/x", ["rbind", "rro", "rnosuid", "rnoatime", "idmap", "rnosuid", "rsuid"])
    flags, _prop, data, recursive = m.flags_and_data()
    assert data == "" and recursive and flags == MS_BIND | MS_REC
    attr_set, attr_clr = m.recursive_attrs()
    assert attr_set == 0x1 | 0x10  # MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOATIME
    assert attr_clr == 0x2 | 0x70  # MOUNT_ATTR_NOSUID (rsuid came last) | the whole atime field
    assert OciMount("/m", "bind", "/x", ["rbind", "rro", "rrw"]).recursive_attrs() == (0, 0x1)


def test_id_mapped_mounts_are_checked() -> None:
    doc = base()
    doc["mounts"].append(
        {"destination": "/data", "type": "bind", "source": "/data", "options": ["bind", "idmap"]}
    )
    assert "takes the container's, and it has none" in error_of(doc)
    doc = base()
    maps = [{"containerID": 0, "hostID": 1000, "size": 1}]
    doc["mounts"].append({"destination": "/data", "type": "tmpfs", "uidMappings": maps, "gidMappings": maps})
    assert "must be a bind mount" in error_of(doc)
    doc["mounts"][-1] = {"destination": "/data", "source": "/d", "options": ["bind"], "uidMappings": maps}
    assert "needs both uidMappings and gidMappings" in error_of(doc)
    doc["mounts"][-1]["gidMappings"] = maps
    m = parse(doc, BUNDLE).mounts[-1]
    assert m.id_mapped and m.uid_mappings == [(0, 1000, 1)] == m.gid_mappings


@pytest.mark.parametrize(
    "field, value, expected",
    [
        (
            "process.ioPriority",
            {"class": "IOPRIO_CLASS_XX"},
            "process.ioPriority.class: 'IOPRIO_CLASS_XX' is not",
        ),
        (
            "process.ioPriority",
            {"class": "IOPRIO_CLASS_BE", "priority": 8},
            "process.ioPriority.priority: must be",
        ),
        (
            "process.scheduler",
            {"policy": "SCHED_FIFO", "flags": ["X"]},
            "process.scheduler.flags[0]: 'X' is not",
        ),
        (
            "process.scheduler",
            {"policy": "SCHED_OTHER", "nice": 20},
            "process.scheduler.nice: must be an integer",
        ),
        ("linux.memoryPolicy", {"mode": "MPOL_BIND"}, "linux.memoryPolicy.nodes: required with MPOL_BIND"),
        (
            "linux.memoryPolicy",
            {"mode": "MPOL_LOCAL", "nodes": "0"},
            "linux.memoryPolicy.nodes: must be empty",
        ),
        ("linux.memoryPolicy", {"mode": "MPOL_BIND", "nodes": "3-1"}, "linux.memoryPolicy.nodes: '3-1'"),
    ],
)
def test_process_attributes_are_validated(field: str, value: dict, expected: str) -> None:
    doc = base()
    section, key = field.split(".")
    doc[section][key] = value
    assert error_of(doc).startswith(f"config.json: {expected}")


def test_process_attributes_parse_and_round_trip() -> None:
    doc = base()
    doc["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 3}
    doc["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 5, "flags": ["SCHED_FLAG_RESET_ON_FORK"]}
    doc["linux"]["memoryPolicy"] = {
        "mode": "MPOL_INTERLEAVE",
        "nodes": "0,2-3",
        "flags": ["MPOL_F_STATIC_NODES"],
    }
    spec = parse(doc, BUNDLE)
    attrs = spec.proc_attrs
    assert attrs is not None and attrs.sched is not None
    assert attrs.ioprio == 3 << 13 | 3
    assert attrs.sched.sched_policy == 3 and attrs.sched.sched_nice == 5
    assert attrs.sched.sched_flags == 1
    assert attrs.mempolicy == (3 | 1 << 15, [0, 2, 3])
    again = parse(spec.to_dict(), BUNDLE)
    assert again.proc_attrs == attrs


def test_namespace_table() -> None:
    assert set(oci.NAMESPACES) == set(oci.NAMESPACE_TYPES)
    assert oci.NAMESPACES["network"] == (0x40000000, "net")
    assert oci.NAMESPACES["mount"][1] == "mnt"
    assert CAPABILITIES.index("CAP_SYS_ADMIN") == 21
    assert CAPABILITIES.index("CAP_CHECKPOINT_RESTORE") == 40
    assert oci.RLIMITS["RLIMIT_NOFILE"] == 7


# -- podman 4.3 -----------------------------------------------------------------------------------
CTR = "3f2a9c81d0e4b7a61e2c3d4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b"
USERDATA = f"/var/lib/containers/storage/overlay-containers/{CTR}/userdata"
RUNDATA = f"/run/containers/storage/overlay-containers/{CTR}/userdata"


def podman_config(cgroups_path: str) -> dict:
    caps = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETFCAP",
        "CAP_SETGID",
        "CAP_SETPCAP",
        "CAP_SETUID",
        "CAP_SYS_CHROOT",
    ]
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": True,
            "user": {
                "uid": 0,
                "gid": 0,
                "umask": 18,
                "additionalGids": [0, 1, 2, 3, 4, 6, 10, 11, 20, 26, 27],
            },
            "args": ["/bin/sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
                "container=podman",
                "HOSTNAME=3f2a9c81d0e4",
                "HOME=/root",
            ],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [
                {"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576},
                {"type": "RLIMIT_NPROC", "hard": 4194304, "soft": 4194304},
            ],
            "oomScoreAdj": 0,
            "apparmorProfile": "containers-default-0.50.1",
        },
        "root": {"path": "/var/lib/containers/storage/overlay/8e1a0c2d7f3b/merged"},
        "hostname": "3f2a9c81d0e4",
        "mounts": [
            {
                "destination": "/proc",
                "type": "proc",
                "source": "proc",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/etc/resolv.conf",
                "type": "bind",
                "source": f"{RUNDATA}/resolv.conf",
                "options": ["bind", "rprivate"],
            },
            {
                "destination": "/etc/hosts",
                "type": "bind",
                "source": f"{RUNDATA}/hosts",
                "options": ["bind", "rprivate"],
            },
            {
                "destination": "/dev/shm",
                "type": "bind",
                "source": f"{USERDATA}/shm",
                "options": ["bind", "rprivate", "nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/etc/hostname",
                "type": "bind",
                "source": f"{RUNDATA}/hostname",
                "options": ["bind", "rprivate"],
            },
            {
                "destination": "/run/.containerenv",
                "type": "bind",
                "source": f"{RUNDATA}/.containerenv",
                "options": ["bind", "rprivate"],
            },
            {
                "destination": "/data",
                "type": "bind",
                "source": "/srv/data",
                "options": ["rbind", "rw", "rprivate", "nosuid", "nodev"],
            },
            {
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"],
            },
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["rprivate", "nosuid", "noexec", "nodev", "relatime", "ro"],
            },
        ],
        "hooks": {},
        "annotations": {
            "io.container.manager": "libpod",
            "io.kubernetes.cri-o.Created": "2023-01-10T14:03:22.123456789Z",
            "io.kubernetes.cri-o.TTY": "true",
            "io.podman.annotations.autoremove": "FALSE",
            "io.podman.annotations.init": "FALSE",
            "io.podman.annotations.privileged": "FALSE",
            "io.podman.annotations.publish-all": "FALSE",
            "org.opencontainers.image.stopSignal": "15",
        },
        "linux": {
            "sysctl": {"net.ipv4.ping_group_range": "0 0"},
            "resources": {
                "devices": [{"allow": False, "access": "rwm"}],
                "memory": {"limit": 536870912, "swap": 1073741824},
                "cpu": {"shares": 1024, "quota": 150000, "period": 100000},
                "pids": {"limit": 2048},
            },
            "cgroupsPath": cgroups_path,
            "namespaces": [
                {"type": "pid"},
                {"type": "network", "path": "/run/netns/netns-6c1f8b2e-4d3a-9e7b-1a2b-3c4d5e6f7a8b"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
                {"type": "cgroup"},
            ],
            "seccomp": {
                "defaultAction": "SCMP_ACT_ERRNO",
                "defaultErrnoRet": 38,
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [
                    {
                        "names": [
                            "bdflush",
                            "io_pgetevents",
                            "kexec_file_load",
                            "kexec_load",
                            "migrate_pages",
                            "move_pages",
                            "nfsservctl",
                            "nice",
                            "oldfstat",
                            "oldlstat",
                            "oldolduname",
                            "oldstat",
                            "olduname",
                            "pciconfig_iobase",
                            "pciconfig_read",
                            "pciconfig_write",
                            "sgetmask",
                            "ssetmask",
                            "swapcontext",
                            "swapoff",
                            "swapon",
                            "sysfs",
                            "uselib",
                            "userfaultfd",
                            "ustat",
                            "vm86",
                            "vm86old",
                            "vmsplice",
                        ],
                        "action": "SCMP_ACT_ERRNO",
                        "errnoRet": 1,
                    },
                    {
                        "names": [
                            "_llseek",
                            "accept",
                            "accept4",
                            "access",
                            "brk",
                            "clone",
                            "close",
                            "execve",
                            "exit",
                            "exit_group",
                            "openat",
                            "read",
                            "write",
                        ],
                        "action": "SCMP_ACT_ALLOW",
                    },
                    {
                        "names": ["personality"],
                        "action": "SCMP_ACT_ALLOW",
                        "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}],
                    },
                    {
                        "names": ["personality"],
                        "action": "SCMP_ACT_ALLOW",
                        "args": [{"index": 0, "value": 4294967295, "op": "SCMP_CMP_EQ"}],
                    },
                    {
                        "names": ["clone"],
                        "action": "SCMP_ACT_ALLOW",
                        "args": [
                            {"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
                        ],
                    },
                ],
            },
            "maskedPaths": [
                "/proc/acpi",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/proc/scsi",
                "/sys/firmware",
                "/sys/fs/selinux",
                "/sys/dev/block",
            ],
            "readonlyPaths": [
                "/proc/asound",
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ],
        },
    }


@pytest.mark.parametrize("cgroups_path", [f"machine.slice:libpod:{CTR}", f"/libpod_parent/libpod-{CTR}"])
def test_podman_config_parses(cgroups_path: str) -> None:
    spec = parse(podman_config(cgroups_path), BUNDLE)
    assert spec.cgroups_path == cgroups_path
    assert spec.root_path == "/var/lib/containers/storage/overlay/8e1a0c2d7f3b/merged"
    assert spec.annotations["io.container.manager"] == "libpod"
    assert spec.namespaces["network"].startswith("/run/netns/") and spec.namespaces["mount"] == ""
    assert spec.resources["pids"] == {"limit": 2048}
    assert spec.seccomp["defaultAction"] == "SCMP_ACT_ERRNO" and len(spec.seccomp["syscalls"]) == 5
    assert spec.process.rlimits[1] == ("RLIMIT_NPROC", 4194304, 4194304)
    assert spec.process.umask == 0o22
    resolv = spec.mounts[5]
    assert resolv.source == f"{RUNDATA}/resolv.conf"
    assert resolv.flags_and_data() == (MS_BIND, [MS_PRIVATE | MS_REC], "", False)
    assert spec.mounts[10].flags_and_data() == (
        MS_BIND | MS_REC | MS_NOSUID | MS_NODEV,
        [MS_PRIVATE | MS_REC],
        "",
        True,
    )
    cgroup = spec.mounts[-1]
    assert cgroup.flags_and_data() == (
        MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RELATIME | MS_RDONLY,
        [MS_PRIVATE | MS_REC],
        "",
        False,
    )
    # accepted, with what cannot be honoured here reported
    assert any("AppArmor" in w for w in spec.warnings) and any("tmpcopyup" in w for w in spec.warnings)
    assert parse(spec.to_dict(), BUNDLE).to_dict() == spec.to_dict()


def test_podman_bundle_loads_from_disk(tmp_path) -> None:
    doc = podman_config(f"/libpod_parent/libpod-{CTR}")
    doc["root"]["path"] = "rootfs"
    spec = load_bundle(write_bundle(tmp_path, doc))
    assert spec.root_path == str(tmp_path / "bundle" / "rootfs")
