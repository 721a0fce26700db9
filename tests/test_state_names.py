"""The name index of a state root (``ROOT/.name.NAME`` → id): a name is reserved by one symlink, refused
while its container lives under it, free again once it is removed, and an entry left by a crash holds
nothing. A root made before the index gets its entries at the next reservation."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from pycontain import state as state_mod
from pycontain.config import ContainerConfig
from pycontain.errors import AlreadyExists, PycontainError
from pycontain.state import NAME_PREFIX, NAMES_INDEXED, ContainerState, StateStore


@pytest.fixture(autouse=True)
def _own_index(tmp_path, monkeypatch):
    """These made-up ids go to an index of the test's own, not the host's /run/pycontain.index."""
    monkeypatch.setattr(state_mod, "INDEX_DIR", str(tmp_path / "index"))


def _state(cid_char: str, name: str) -> ContainerState:
    return ContainerState(cid_char * 64, name, ContainerConfig("/r", ["sh"]))


def _entry(store: StateStore, name: str) -> str:
    return os.path.join(store.root, NAME_PREFIX + name)


def _remove(store: StateStore, cid: str) -> None:
    with store.lock():
        store.remove(cid)


def test_a_name_is_held_by_its_container_until_it_is_removed(tmp_path):
    store = StateStore(str(tmp_path / "root"))
    a = _state("a", "web")
    store.reserve(a)
    assert os.readlink(_entry(store, "web")) == a.id
    assert store.holder("web") is not None and store.holder("web").id == a.id
    with pytest.raises(
        AlreadyExists, match=r"the container name 'web' is already in use by container aaaaaaaaaaaa"
    ):
        store.reserve(_state("b", "web"))
    assert not os.path.exists(store.dir("b" * 64))
    _remove(store, a.id)
    assert not os.path.lexists(_entry(store, "web"))
    store.reserve(_state("b", "web"))
    assert os.readlink(_entry(store, "web")) == "b" * 64


def test_a_root_from_before_the_index_is_indexed_at_the_next_reservation(tmp_path):
    store = StateStore(str(tmp_path / "root"))
    old = _state("c", "old")
    # As an older pycontain left it: a state directory, an empty lock file, no name entry.
    os.makedirs(store.dir(old.id))
    store.save(old)
    open(os.path.join(store.root, ".lock"), "w").close()
    with pytest.raises(AlreadyExists):
        store.reserve(_state("d", "old"))
    assert os.readlink(_entry(store, "old")) == old.id
    with open(os.path.join(store.root, ".lock"), "rb") as f:
        assert f.read() == NAMES_INDEXED


@pytest.mark.parametrize("left", ["gone", "renamed", "not-an-id"])
def test_an_entry_left_by_a_crash_holds_nothing_and_gc_removes_it(tmp_path, left):
    store = StateStore(str(tmp_path / "root"))
    store.reserve(_state("e", "first"))  # indexes the root
    if left == "renamed":
        other = _state("f", "other")
        store.reserve(other)
        os.symlink(other.id, _entry(store, "web"))  # its container has another name
    else:
        os.symlink("f" * 64 if left == "gone" else "../../etc", _entry(store, "web"))
    assert store.holder("web") is None
    with store.lock():  # what 'gc' does (collect itself also sweeps the host's cgroups and index)
        assert store.stale_names() == [_entry(store, "web")]
    assert not os.path.lexists(_entry(store, "web"))
    os.symlink("f" * 64, _entry(store, "web"))
    new = _state("1", "web")
    store.reserve(new)
    assert os.readlink(_entry(store, "web")) == new.id


def test_a_reservation_that_fails_leaves_no_entry(tmp_path, monkeypatch):
    store = StateStore(str(tmp_path / "root"))

    def full(state):
        raise PycontainError("disk full")

    monkeypatch.setattr(store, "save", full)
    with pytest.raises(PycontainError, match="disk full"):
        store.reserve(_state("2", "web"))
    assert sorted(os.listdir(store.root)) == [".lock"]


def _reserve_one(root: str, i: int, results) -> None:
    try:
        StateStore(root).reserve(_state("0123456789abcdef"[i], "same"))
        results.put(i)
    except AlreadyExists:
        results.put(-1)


def test_concurrent_reservations_of_one_name_give_it_to_exactly_one(tmp_path):
    root = str(tmp_path / "root")
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_reserve_one, args=(root, i, results)) for i in range(16)]
    for p in procs:
        p.start()
    got = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
    winners = [i for i in got if i >= 0]
    assert len(winners) == 1, got
    store = StateStore(root)
    assert [st.name for st in store.all()] == ["same"]
    assert os.readlink(_entry(store, "same")) == "0123456789abcdef"[winners[0]] * 64
