"""The netlink layer: pyroute2's messages in batches, and only pyroute2's message modules on run's path.

Everything here happens in network namespaces the tests make (or reads the host's links, never changes
them), and sends no traffic.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from pycontain.errors import PycontainError
from pycontain.network import netns, rtnl
from tests.importlist import imported

from .conftest import needs_net

pytestmark = needs_net
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _imported(*run_args: str) -> set[str]:
    """The modules a ``pycontain run`` imports."""
    return imported(os.environ["PYCONTAIN_ROOT"], "run", "--rm", *run_args, "default", "--", "true", cwd=REPO)


@pytest.fixture
def root_env(state_root, monkeypatch):
    monkeypatch.setenv("PYCONTAIN_ROOT", state_root)


def test_run_imports_pyroute2_messages_not_the_package(root_env):
    mods = _imported()
    assert "pyroute2.netlink.rtnl.ifinfmsg" in mods
    # The package's __init__ (~85 ms) pulls IPRoute, asyncio, NDB, conntrack...: none of it on run's path.
    assert not mods & {
        "asyncio",
        "pyroute2.iproute",
        "pyroute2.iproute.linux",
        "pyroute2.ndb",
        "pyroute2.conntrack",
        "multiprocessing",  # pyroute2.config's, a stand-in here (ifinfmsg reads three names of it)
        "platform",
    }
    plain = _imported("--network", "none")
    assert not any(m.startswith("pyroute2") for m in plain)
    # Nor what annotations could drag in (typing loads re; type-only imports sit under TYPE_CHECKING).
    assert not plain & {"typing", "re", "enum", "json", "dataclasses", "typer", "rich"}


def test_the_stand_in_package_still_gives_all_of_pyroute2():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from pycontain.network import rtnl\n"
        "rtnl.load()\n"
        "assert 'asyncio' not in sys.modules and 'pyroute2.iproute' not in sys.modules\n"
        "assert 'multiprocessing' not in sys.modules\n"
        "from pyroute2 import config\n"
        "config.data_plugins_path.append('/nonexistent')\n"
        "assert config.kernel and config.data_plugins_path == ['/nonexistent']  # the real module, lists kept\n"
        "import pyroute2\n"
        "assert pyroute2.__version__\n"
        "from pyroute2 import IPRoute\n"
        "with IPRoute() as ipr:\n"
        "    assert ipr.link_lookup(ifname='lo')\n"
        "print('ok')\n"
    )
    p = subprocess.run([sys.executable, "-c", code, REPO], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout == "ok\n", p.stderr


@pytest.fixture
def ns(tmp_path):
    path = str(tmp_path / "netns" / "t")
    netns.create(path)
    try:
        yield path
    finally:
        netns.remove(path)


def test_a_batch_runs_in_order_and_answers_each_request(ns):
    with rtnl.Rtnl(netns.netlink_socket(ns)) as nl:
        lo_up, dummy, lookup, links = nl.call(
            rtnl.set_link(1, up=True),
            rtnl.new_link("d0", "bridge", up=True, mtu=1400),
            rtnl.get_link("d0"),
            rtnl.dump_links(),
        )
        assert lo_up.error == 0 and dummy.error == 0
        d0 = lookup.replies[0]
        assert d0.get_attr("IFLA_MTU") == 1400 and d0["flags"] & rtnl.IFF_UP
        assert sorted(link.get_attr("IFLA_IFNAME") for link in links.replies) == ["d0", "lo"]
        addr, route = nl.call(
            rtnl.new_addr(d0["index"], "10.9.8.7", 24), rtnl.new_default_route("10.9.8.1", d0["index"])
        )
        (addrs,) = nl.call(rtnl.dump_addrs())
        assert ("10.9.8.7", 24) in {(a.get_attr("IFA_LOCAL"), a["prefixlen"]) for a in addrs.replies}
        (routes,) = nl.call(rtnl.dump_routes())
        assert any(r["dst_len"] == 0 and r.get_attr("RTA_GATEWAY") == "10.9.8.1" for r in routes.replies)
        # Expected refusals are answers; the others raise, one line, after the kernel ran the whole batch.
        gone, missing = nl.call(rtnl.del_link("d0"), rtnl.get_link("d0"))
        assert gone.error == 0 and missing.error == errno.ENODEV and rtnl.index_of(missing) is None
        (again,) = nl.call(rtnl.del_link("d0"))
        assert again.error == errno.ENODEV
        with pytest.raises(rtnl.netlink_error()) as refused:
            nl.call(rtnl.new_addr(4242, "10.9.8.7", 24), rtnl.new_link("d1", "bridge"))
        assert refused.value.code == errno.ENODEV and isinstance(refused.value, PycontainError)
        assert str(refused.value).startswith("cannot add address 10.9.8.7/24: ") and "\n" not in str(
            refused.value
        )
        assert rtnl.index_of(nl.call(rtnl.get_link("d1"))[0]) is not None


def test_create_with_socket_overlaps_and_abandon_closes(tmp_path):
    path = str(tmp_path / "netns" / "bg")
    pending = netns.create_with_socket(path)
    try:
        fd = pending.wait()
        assert isinstance(fd, int) and netns.is_mounted(path)
        with rtnl.Rtnl(fd) as nl:
            assert [link.get_attr("IFLA_IFNAME") for link in nl.call(rtnl.dump_links())[0].replies] == ["lo"]
    finally:
        netns.remove(path)
    assert not os.path.exists(os.path.dirname(path)), "the namespace directory outlived its last namespace"
    # A caller that failed meanwhile: the socket is closed for it, the namespace is its to remove.
    pending = netns.create_with_socket(path)
    before = set(os.listdir("/proc/self/fd"))
    netns.abandon(pending)
    try:
        assert set(os.listdir("/proc/self/fd")) <= before
    finally:
        netns.remove(path)
