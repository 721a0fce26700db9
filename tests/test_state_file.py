"""state.json carries its schema's version: files from before the version field still load, and a newer
pycontain's containers are left alone (not listed, collected or removed) by this one."""

from __future__ import annotations

import json
import os

import pytest

from pycontain.config import ContainerConfig
from pycontain.errors import InvalidState
from pycontain.state import NAME_PREFIX, STATE_VERSION, ContainerState, NewerState, StateStore

CID = "ab" * 32


def _write(root: str, doc: dict) -> str:
    d = os.path.join(root, CID)
    os.makedirs(d)
    path = os.path.join(d, "state.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return path


def test_saved_state_has_the_version_and_loads_back(tmp_path):
    store = StateStore(str(tmp_path))
    os.makedirs(store.dir(CID))
    st = ContainerState(CID, "web", ContainerConfig("/r", ["sh"]), pid=42, pid_start=7, restarts=2)
    store.save(st)
    with open(os.path.join(store.dir(CID), "state.json")) as f:
        doc = json.load(f)
    assert doc["version"] == STATE_VERSION == 1
    back = store.load_id(CID)
    assert back is not None and back.to_dict() == st.to_dict()
    assert (back.name, back.pid, back.pid_start, back.restarts, back.config.args) == ("web", 42, 7, 2, ["sh"])


def test_a_state_from_before_the_version_field_loads(tmp_path):
    doc = ContainerState(CID, "old", ContainerConfig("/r", ["sh"])).to_dict()
    del doc["version"]
    _write(str(tmp_path), doc)
    st = StateStore(str(tmp_path)).load_id(CID)
    assert st is not None and st.name == "old" and not st.error


@pytest.mark.parametrize("version", ["1", 0, True, None])
def test_a_version_that_is_no_version_is_a_damaged_state(tmp_path, version):
    doc = ContainerState(CID, "odd", ContainerConfig("/r", ["sh"])).to_dict()
    doc["version"] = version
    _write(str(tmp_path), doc)
    st = StateStore(str(tmp_path)).load_id(CID)
    assert st is not None and st.error.startswith("state file is damaged: ")


def test_a_newer_state_is_named_and_never_listed(tmp_path):
    doc = ContainerState(CID, "future", ContainerConfig("/r", ["sh"])).to_dict()
    doc["version"] = STATE_VERSION + 1
    path = _write(str(tmp_path), doc)
    store = StateStore(str(tmp_path))
    assert store.all() == []
    with pytest.raises(NewerState, match=r"state.json has version 2, newer than this pycontain reads \(1\)"):
        store.load_id(CID)
    with pytest.raises(InvalidState):
        store.find(CID)
    assert store.leftovers() == [] and os.path.exists(path)


def test_cli_leaves_a_newer_state_alone(pyc):
    doc = ContainerState(CID, "future", ContainerConfig("/r", ["sh"])).to_dict()
    doc["version"] = STATE_VERSION + 1
    path = _write(pyc.root, doc)
    p = pyc("ps", "-a", "--json")
    assert p.returncode == 0 and json.loads(p.stdout) == [], p.stderr
    for args in (("inspect", CID), ("rm", "-f", CID)):
        p = pyc(*args)
        assert p.returncode == 125, (args, p.stdout, p.stderr)
        assert p.stderr.strip().splitlines() == [p.stderr.strip()] and "version 2" in p.stderr, p.stderr
    assert pyc("gc").returncode == 0
    assert os.path.exists(path)
    os.unlink(path)  # the fixture's rm -f cannot remove it (by design): leave its directory empty for it
    os.rmdir(os.path.dirname(path))


def test_a_name_is_found_through_the_name_index_and_only_its_holder_is_trusted(tmp_path, monkeypatch):
    """find(NAME) reads the one state the name's index entry points to (engines call state, exec, kill by
    name), and reads every state when the entry is missing or its container has another name."""
    store = StateStore(str(tmp_path))
    web, db = "a" * 64, "b" * 64
    for cid, name in ((web, "web"), (db, "db")):
        os.makedirs(store.dir(cid))
        store.save(ContainerState(cid, name, ContainerConfig("/r", ["sh"])))
    entry = os.path.join(store.root, NAME_PREFIX + "web")
    assert store.find("web").id == web  # no entry (a root from before the index): every state read
    os.symlink(db, entry)  # a crash's leftover: db does not hold the name
    assert store.find("web").id == web
    os.unlink(entry)
    os.symlink(web, entry)
    monkeypatch.setattr(store, "all", lambda: pytest.fail("every state read for a name in the index"))
    assert store.find("web").id == web


@pytest.mark.parametrize("name_given", [True, False])
def test_removal_takes_the_whole_directory_and_releases_the_name(tmp_path, name_given):
    """Empty directories go at once, a full one (a writable layer written to, work/work closed to its
    owner) and a file come meanwhile (an exec's cached settings) are walked; the name's entry goes last,
    from the name the caller read under the lock or, without one, from the state file."""
    store = StateStore(str(tmp_path))
    d = store.dir(CID)
    os.makedirs(d)
    store.save(ContainerState(CID, "web", ContainerConfig("/r", ["sh"])))
    entry = os.path.join(store.root, NAME_PREFIX + "web")
    os.symlink(CID, entry)
    os.makedirs(os.path.join(d, "upper", "etc"))
    with open(os.path.join(d, "upper", "etc", "x"), "w") as f:
        f.write("x")
    os.makedirs(os.path.join(d, "work", "work"))
    os.chmod(os.path.join(d, "work", "work"), 0)
    os.mkdir(os.path.join(d, "empty"))
    with open(os.path.join(d, "exec-security-0"), "w") as f:
        f.write("x")
    with store.lock():
        store.remove(CID, "web" if name_given else None)
    assert not os.path.lexists(d)
    assert not os.path.lexists(entry)
