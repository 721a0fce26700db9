"""pycontain SIGKILLed at every named step of start, exec and rm (and of create with a bridge network,
where the detached container's monitor is the process that creates it, and dies) leaves only what
``pycontain rm -f ID`` or ``pycontain gc`` removes: mounts, cgroups, state, index
entries, processes, and with --network bridge also veths, nft rules and the namespace's bind mount.

tests/test_crash.py covers the create steps without networking.
"""

from __future__ import annotations

import json
import os
import random

import pytest
from conftest import ROOT_REQUIRED, wait_until

from pycontain.container import CREATE_STEPS, EXEC_STEPS, REMOVE_STEPS, START_STEPS

from .conftest import CrashCLI, Host, processes_with, sleeper

pytestmark = ROOT_REQUIRED


def assert_clean(host: Host, before: dict, marker: str) -> None:
    assert wait_until(lambda: not processes_with(marker)), f"processes left: {processes_with(marker)}"
    assert Host.leaks(before, host.snapshot(marker)) == {}


def oci_bundle(path: str, args: list[str]) -> str:
    import rootfs_builder
    from pycontain.spec import default_spec

    spec = default_spec()
    spec["process"]["terminal"] = False
    spec["process"]["args"] = args
    spec["root"] = {"path": rootfs_builder.default_path(), "readonly": True}
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(spec, f)
    return path


@pytest.mark.parametrize("step", START_STEPS)
def test_killed_start_is_cleaned_by_rm_force(cli: CrashCLI, host: Host, tmp_path, step):
    marker = f"crash-start-{step}"
    before = host.snapshot(marker)
    bundle = oci_bundle(str(tmp_path / "bundle"), sleeper(marker))
    p = cli.leaving("create", "--bundle", bundle, "ocistart")
    assert p.returncode == 0, p.stderr
    p = cli("start", "ocistart", crash=step)
    assert p.returncode == -9, (p.returncode, p.stderr)
    host.note_ids()
    # Released before the kill: the process runs its command whatever happened to 'start'.
    if step != "start-fifo-opened":
        assert wait_until(lambda: processes_with(marker))
    assert cli("rm", "-f", "ocistart").returncode == 0
    assert_clean(host, before, marker)


@pytest.mark.parametrize("step", EXEC_STEPS)
def test_killed_exec_leaves_the_container_usable_and_rm_force_cleans(cli: CrashCLI, host: Host, step):
    marker = f"crash-exec-{step}"
    before = host.snapshot(marker)
    cli("run", "-d", "--name", "execd", "default", "--", *sleeper(marker), check=True)
    host.note_ids()
    p = cli.leaving("exec", "execd", *sleeper(marker + "-exec"), crash=step)
    assert p.returncode == -9, (p.returncode, p.stderr)
    if step == "exec-started":
        assert wait_until(lambda: processes_with(marker + "-exec"))
    # A killed exec does not harm the container: the next one works.
    p = cli("exec", "execd", "echo", "still-here")
    assert (p.returncode, p.stdout) == (0, "still-here\n"), p.stderr
    assert cli("rm", "-f", "execd").returncode == 0
    assert_clean(host, before, marker)


@pytest.mark.parametrize("cleanup", ["rm", "gc"])
@pytest.mark.parametrize("step", REMOVE_STEPS)
def test_killed_rm_is_finished_by_rm_force_or_gc(cli: CrashCLI, host: Host, step, cleanup):
    marker = f"crash-rm-{step}-{cleanup}"
    before = host.snapshot(marker)
    cli("run", "-d", "--name", "victim", "-m", "64m", "default", "--", *sleeper(marker), check=True)
    host.note_ids()
    p = cli("rm", "-f", "victim", crash=step)
    assert p.returncode == -9, (p.returncode, p.stderr)
    assert cli("ps", "-a", "-q").stdout.split() != [], "a removal cut short must still be visible"
    if cleanup == "rm":
        p = cli("rm", "-f", "victim")
        assert p.returncode == 0, p.stderr
    else:
        p = cli("gc")
        assert p.returncode == 0 and "abandoned while being removed" in p.stdout, (p.stdout, p.stderr)
    assert_clean(host, before, marker)


def test_killed_rm_is_not_undone_by_the_restart_policy(cli: CrashCLI, host: Host):
    """PID 1 killed by an 'rm' that was killed in turn: its monitor neither records it exited nor starts it
    again ('always'), so the container stays "removing" until gc finishes the removal."""
    marker = "crash-rm-restart-always"
    before = host.snapshot(marker)
    cli(
        "run", "-d", "--name", "phoenix", "--restart", "always", "default", "--", *sleeper(marker), check=True
    )
    host.note_ids()
    (cid,) = host.ids
    assert cli("rm", "-f", "phoenix", crash="rm-killed").returncode == -9
    # The monitor's processes name the container's id: they end, rather than loop over a new PID 1.
    assert wait_until(lambda: not processes_with(cid)), "the monitor started the container again"
    assert json.loads(cli("inspect", "phoenix").stdout)[0]["State"]["Status"] == "removing"
    p = cli("gc")
    assert p.returncode == 0 and "abandoned while being removed" in p.stdout, (p.stdout, p.stderr)
    assert_clean(host, before, marker)


def test_gc_leaves_a_removal_in_progress_alone(cli: CrashCLI, host: Host):
    """'removing' with a live remover is work in progress, not a leftover."""
    marker = "crash-rm-in-progress"
    before = host.snapshot(marker)
    cli("run", "-d", "--name", "busy", "default", "--", *sleeper(marker), check=True)
    host.note_ids()
    (cid,) = host.ids
    from pycontain.state import REMOVING, ProcRef, StateStore

    store = StateStore(cli.root)
    st = store.load_id(cid)
    st.status = REMOVING
    st.creator = ProcRef.me()
    store.save(st)
    assert "busy" not in cli("gc").stdout
    assert cli("ps", "-a", "-q").stdout.split() == [cid[:12]]
    assert cli("rm", "-f", "busy").returncode == 0
    assert_clean(host, before, marker)


# -- with a bridge network: veths, namespaces, addresses and nft rules too ----------------------------


@pytest.mark.parametrize("step", CREATE_STEPS)
def test_killed_networked_create_is_cleaned_by_rm_force(net_cli: CrashCLI, state_root, step):
    host = Host(state_root, network=True)
    marker = f"crash-netcreate-{step}"
    before = host.snapshot(marker)
    port = random.randint(20000, 40000)
    p = net_cli(
        "run",
        "-d",
        "--name",
        "netc",
        "--network",
        "bridge",
        "-p",
        f"127.0.0.1:{port}:80",
        "default",
        "--",
        *sleeper(marker),
        crash=step,
    )
    # A detached container is made by its monitor: the monitor is what dies, and run says so in one line.
    assert p.returncode == 125, (p.returncode, p.stderr)
    assert p.stderr.count("\n") == 1 and "monitor died" in p.stderr, p.stderr
    host.note_ids()
    assert net_cli("ps", "-a", "-q").stdout.split() != [], "a create cut short must still be visible"
    assert net_cli("rm", "-f", "netc").returncode == 0
    assert_clean(host, before, marker)


@pytest.mark.parametrize("cleanup", ["rm", "gc"])
@pytest.mark.parametrize("step", REMOVE_STEPS)
def test_killed_networked_rm_is_finished(net_cli: CrashCLI, state_root, step, cleanup):
    host = Host(state_root, network=True)
    marker = f"crash-netrm-{step}-{cleanup}"
    before = host.snapshot(marker)
    port = random.randint(20000, 40000)
    net_cli(
        "run",
        "-d",
        "--name",
        "netr",
        "--network",
        "bridge",
        "-p",
        f"127.0.0.1:{port}:80",
        "default",
        "--",
        *sleeper(marker),
        check=True,
    )
    host.note_ids()
    during = host.snapshot(marker)
    assert Host.leaks(before, during).keys() >= {"links", "nft", "mounts", "cgroups"}, (
        "the test sees the traces"
    )
    p = net_cli("rm", "-f", "netr", crash=step)
    assert p.returncode == -9, (p.returncode, p.stderr)
    p = net_cli("rm", "-f", "netr") if cleanup == "rm" else net_cli("gc")
    assert p.returncode == 0, p.stderr
    assert_clean(host, before, marker)


@pytest.mark.parametrize("cleanup", ["rm", "gc", "ps"])
@pytest.mark.parametrize("step", REMOVE_STEPS)
def test_killed_removal_of_a_foreground_rm_container_is_finished(cli: CrashCLI, host: Host, step, cleanup):
    """A foreground 'run --rm' removes its container once PID 1 has exited, without marking it "removing"
    first: killed part-way, it leaves an exited --rm container, which 'rm -f', 'gc' or 'ps' removes whole."""
    marker = f"crash-fg-rm-{step}-{cleanup}"
    before = host.snapshot(marker)
    p = cli(
        "run", "--rm", "--name", "fg", "-m", "64m", "default", "--", "sh", "-c", "true", marker, crash=step
    )
    assert p.returncode == -9, (p.returncode, p.stderr)
    host.note_ids()
    p = cli("inspect", "fg")
    assert p.returncode == 0 and json.loads(p.stdout)[0]["State"]["Status"] == "exited", (p.stdout, p.stderr)
    if cleanup == "rm":
        p = cli("rm", "-f", "fg")
        assert p.returncode == 0, p.stderr
    elif cleanup == "ps":  # an exited --rm container goes when listed
        p = cli("ps", "-a", "-q")
        assert (p.returncode, p.stdout) == (0, ""), p.stderr
    else:
        p = cli("gc")
        assert p.returncode == 0 and "exited --rm" in p.stdout, (p.stdout, p.stderr)
    assert_clean(host, before, marker)
