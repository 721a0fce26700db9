"""state.json is loaded into typed objects: the configuration a ``ContainerConfig``, the health a
``HealthState``, the monitor and creator ``ProcRef``s, the network attachment a ``NetInfo``. Files written
before (without a version) still load, the JSON written is the same, 'inspect' shows what it showed, and
a damaged file is reported on one line naming it. None of these tests needs root: they read files only."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from pycontain.cgroups.devices import DeviceRule
from pycontain.cgroups.resources import Resources
from pycontain.config import ContainerConfig
from pycontain.config_fields import Mount
from pycontain.health import HealthResult, HealthState
from pycontain.network.info import NetInfo
from pycontain.spec import default_spec, parse
from pycontain.state import ContainerState, ProcRef, StateStore
from tests.importlist import imported

DATA = os.path.join(os.path.dirname(__file__), "data", "state")
# State files written by main before the typed state (13:50 UTC, 2026-12-03), with the root directory
# as @ROOT@, and what its 'inspect' printed for them (tests/data/state/*.inspect.json)
GOLDEN = ("golden-bridge", "golden-health")


def _install(root: str, name: str) -> dict:
    with open(os.path.join(DATA, f"{name}.json")) as f:
        text = f.read().replace("@ROOT@", root)
    doc = json.loads(text)
    os.makedirs(os.path.join(root, doc["id"]), exist_ok=True)
    with open(os.path.join(root, doc["id"], "state.json"), "w") as f:
        f.write(text)
    return doc


def _cli(root: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pycontain", "--root", root, *args], capture_output=True, text=True, timeout=60
    )


def test_a_saved_state_reads_back_typed(tmp_path):
    root = str(tmp_path)
    for name in GOLDEN:
        _install(root, name)
    store = StateStore(root)
    bridge, health = store.find("golden-bridge"), store.find("golden-health")
    for st in (bridge, health):
        assert isinstance(st.config, ContainerConfig) and not st.error
        assert all(isinstance(m, Mount) for m in st.config.mounts) and st.config.mounts[0].target == "/proc"
        assert all(isinstance(r, DeviceRule) for r in st.config.device_rules or [None])
        assert isinstance(st.creator, ProcRef) and (st.creator.pid, st.creator.start) == (1, 1)
    assert isinstance(bridge.net_info, NetInfo) and bridge.net_info.ip == "10.88.0.2"
    assert [(p.host_port, p.container_port) for p in bridge.net_info.ports] == [(8080, 80)]
    assert bridge.config.labels == {"a": "b"} and bridge.config.publish == ["8080:80"]
    assert "net_info" not in bridge.config.to_dict()  # runtime state, not configuration
    assert isinstance(health.config.resources, Resources) and health.config.resources.memory == 100 << 20
    assert isinstance(health.health, HealthState) and health.health.status == "unhealthy"
    assert health.health.failing_streak == 3 and isinstance(health.health.log[0], HealthResult)
    assert health.health.log[0].exit_code == 1 and health.monitor is None and health.net_info is None


@pytest.mark.parametrize("name", GOLDEN)
def test_the_json_written_is_the_json_read(tmp_path, name):
    """Loaded and saved again, an old file (golden-bridge has no version) keeps every key and value."""
    doc = _install(str(tmp_path), name)
    store = StateStore(str(tmp_path))
    st = store.load_id(doc["id"])
    assert st is not None
    store.save(st)
    with open(os.path.join(store.dir(doc["id"]), "state.json")) as f:
        again = json.load(f)
    assert again == {"version": 1, **doc}


@pytest.mark.parametrize("name", GOLDEN)
def test_inspect_shows_what_it_showed_before_the_typed_state(tmp_path, name):
    root = str(tmp_path)
    _install(root, name)
    p = _cli(root, "inspect", name)
    assert p.returncode == 0, p.stderr
    with open(os.path.join(DATA, f"{name}.inspect.json")) as f:
        golden = json.load(f)
    assert json.loads(p.stdout.replace(root, "@ROOT@")) == golden


def test_a_config_round_trips_through_its_state_form(tmp_path):
    """Every typed field of a rich config (limits, devices, hooks, security, mounts) comes back equal."""
    doc = default_spec()
    doc["root"] = {"path": str(tmp_path)}
    doc["linux"]["resources"] = {"memory": {"limit": 1 << 28}, "pids": {"limit": 64}}
    doc["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    doc["hooks"] = {"poststart": [{"path": "/bin/true", "args": ["true", "x"], "timeout": 3}]}
    doc["annotations"] = {"k": "v"}
    from pycontain.config_check import from_spec

    spec = parse(doc, bundle="/")
    config = from_spec(spec, "typed", labels={"l": "1"}, restart="on-failure:3", stop_signal="INT")
    saved = config.to_dict()
    back = ContainerConfig.from_dict(json.loads(json.dumps(saved)))
    assert back.to_dict() == saved
    assert back.hooks["poststart"][0].args == ["true", "x"] and back.hooks["poststart"][0].timeout == 3
    assert back.resources is not None and back.resources.pids_limit == 64
    assert [d.path for d in back.devices] == ["/dev/fuse"]
    assert back.labels == {"l": "1"} and back.restart == "on-failure:3"


def test_a_state_is_saved_and_loaded_with_typed_parts(tmp_path):
    store = StateStore(str(tmp_path))
    cid = "cd" * 32
    os.makedirs(store.dir(cid))
    health = HealthState("healthy", 0, [HealthResult(1.5, 2.5, 0, "ok")])
    st = ContainerState(
        cid, "typed", ContainerConfig("/r", ["sh"]), monitor=ProcRef(7, 9), health=health, restarts=1
    )
    store.save(st)
    back = store.load_id(cid)
    assert back is not None and back.to_dict() == st.to_dict()
    assert back.monitor == ProcRef(7, 9) and back.health is not None
    assert back.health.log[0].output == "ok" and back.config.args == ["sh"]


# (where in the file, a wrong value) → the words the error must hold
DAMAGES = [
    (("pid",), "x", "pid: 'x' is not an integer"),
    (("oom_killed",), 1, "oom_killed: 1 is not true or false"),
    (("monitor",), [1], "expected [pid, start time]"),
    (("health",), {"Status": 3}, "health: expected Status"),
    (("config", "labels"), "a=b", "config: labels: 'a=b' is not an object"),
    (("config", "args"), "sh", "config: args: 'sh' is not a list"),
    (("config", "detach"), "yes", "config: detach: 'yes' is not true or false"),
    (("config",), None, "config: None is not an object"),
    (("name",), None, "name: None is not a string"),
]


@pytest.mark.parametrize(("where", "value", "words"), DAMAGES)
def test_a_damaged_state_is_named_on_one_line(tmp_path, where, value, words):
    root = str(tmp_path)
    doc = _install(root, "golden-health")
    target = doc
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    path = os.path.join(root, doc["id"], "state.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    st = StateStore(root).load_id(doc["id"])
    assert st is not None and st.error.startswith(f"state file is damaged: {path}: ")
    assert words in st.error and "\n" not in st.error
    for args in (("ps", "-a"), ("inspect", doc["id"]), ("start", doc["id"][:12]), ("rm", "-f", doc["id"])):
        p = _cli(root, *args)
        assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) <= 1, (args, p.stderr)
        if args[0] == "inspect":
            assert json.loads(p.stdout)[0]["State"]["Error"] == st.error
    assert not os.path.exists(path)  # 'rm -f' removed it


def test_the_last_dict_fields_of_a_config_are_typed(tmp_path):
    """healthcheck, time_offsets and proc_attrs: frozen values, validated where made, back from the state."""
    from pycontain import api
    from pycontain.config_fields import HealthCheck, ProcAttrs, Sched, TimeOffsets
    from pycontain.errors import InvalidArgument

    check = api.healthcheck("true", "5s", "2s", "4", "1s")
    assert check == HealthCheck(["sh", "-c", "true"], 5.0, 2.0, 4, 1.0)
    assert api.healthcheck(none=True) == HealthCheck([]) and api.healthcheck() is None
    with pytest.raises(AttributeError):
        check.retries = 9  # type: ignore[misc]
    for bad in ({"cmd": "true"}, {"cmd": ["true"], "interval": 0}, {"cmd": ["true"], "retries": True}):
        with pytest.raises(InvalidArgument):
            HealthCheck(**bad)  # type: ignore[arg-type]
    doc = default_spec()
    doc["root"] = {"path": str(tmp_path)}
    doc["linux"]["namespaces"].append({"type": "time"})
    doc["linux"]["timeOffsets"] = {"monotonic": {"secs": 86400, "nanosecs": 5}, "boottime": {"secs": -1}}
    doc["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 5}
    doc["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 3}
    from pycontain.config_check import from_spec

    config = from_spec(parse(doc, bundle="/"), "typed", healthcheck=check)
    assert config.time_offsets == TimeOffsets((86400, 5), (-1, 0))
    assert config.time_offsets.lines() == "monotonic 86400 5\nboottime -1 0\n"
    assert isinstance(config.proc_attrs, ProcAttrs) and isinstance(config.proc_attrs.sched, Sched)
    assert config.proc_attrs.sched.sched_nice == 5 and config.proc_attrs.ioprio == 3 << 13 | 3
    saved = json.loads(json.dumps(config.to_dict()))
    assert saved["time_offsets"] == {
        "monotonic": {"secs": 86400, "nanosecs": 5},
        "boottime": {"secs": -1, "nanosecs": 0},
    }
    assert saved["healthcheck"] == {
        "cmd": ["sh", "-c", "true"],
        "interval": 5.0,
        "timeout": 2.0,
        "retries": 4,
        "start_period": 1.0,
    }
    back = ContainerConfig.from_dict(saved)
    assert (back.healthcheck, back.time_offsets, back.proc_attrs) == (
        check,
        config.time_offsets,
        config.proc_attrs,
    )
    assert back.to_dict() == saved


def test_the_saved_config_types_cover_every_config_field():
    """state.py checks a saved config's JSON types without importing config.py: its table must name
    every field ContainerConfig has, and no other."""
    from pycontain import state

    assert set(state._CONFIG_TYPES) == set(ContainerConfig.FIELDS)


def test_ps_and_state_show_the_saved_config_without_making_one(tmp_path):
    """They read the few fields they show from state.json's form (ConfigView): the same values the typed
    config has, the defaults for a file from before a field, and no import of the config module."""
    root = str(tmp_path)
    docs = [_install(root, name) for name in GOLDEN]
    del docs[0]["config"]["image"], docs[0]["config"]["labels"]  # as a file from before those fields
    with open(os.path.join(root, docs[0]["id"], "state.json"), "w") as f:
        json.dump(docs[0], f)
    store = StateStore(root)
    for doc in docs:
        st = store.load_id(doc["id"])
        assert st is not None and not st.error
        shown, cfg = st.shown, ContainerConfig.from_dict(doc["config"])
        for k in shown.__slots__:
            assert getattr(shown, k) == getattr(cfg, k), k
    p = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "pycontain",
            "--root",
            root,
            "ps",
            "-a",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    rows = {r["Id"]: r for r in json.loads(p.stdout)}
    assert rows[docs[0]["id"]]["Image"] == docs[0]["config"]["rootfs"] and rows[docs[0]["id"]]["Labels"] == {}
    assert rows[docs[1]["id"]]["Command"] == docs[1]["config"]["args"]
    for args in (("ps", "-a"), ("state", docs[1]["id"])):
        assert "pycontain.config" not in imported(root, *args), args
