"""Bad input, generated: CLI values and OCI config.json documents never get a traceback out of pycontain.

Each value either works (and the container it made is gone again: ``--rm``, or deleted) or fails with exit
125 and exactly one line on stderr that names the offending value; either way the state root is left
empty. Example counts stay small (each example is a real pycontain process); HYPOTHESIS_PROFILE=fuzz-long
runs more.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import ROOT_REQUIRED
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pycontain.errors import PycontainError
from pycontain.units import parse_size

pytestmark = ROOT_REQUIRED

settings.register_profile(
    "fuzz",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "fuzz-long",
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FUZZ = settings.get_profile(
    os.environ.get("HYPOTHESIS_PROFILE", "fuzz")
    if os.environ.get("HYPOTHESIS_PROFILE", "").startswith("fuzz")
    else "fuzz"
)

# Command-line arguments cannot hold NUL or lone surrogates; anything else goes.
ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=60)
LONG = "9" * 5000
HUGE = "x" * 100_000  # close to the kernel's limit for one argument (128 KiB)


def _valueish(pattern: str) -> st.SearchStrategy[str]:
    """Mostly plausible values (so the parsers' inner branches are reached), sometimes anything."""
    return st.one_of(st.from_regex(pattern, fullmatch=True), ANY_TEXT)


SIZES = _valueish(r"-?[0-9]{0,22}(\.[0-9]{0,4})?( ?[kmgtpKMGTPbB][iI]?[bB]?)?")
NUMBERS = _valueish(r"[-+]?[0-9]{0,25}(\.[0-9]{0,6})?([eE][-+]?[0-9]{1,4})?|nan|inf|-inf|0x1f|1_000")
PORTS = _valueish(
    r"(([0-9]{1,3}\.){3}[0-9]{1,3}:|\[?::1\]?:)?[0-9]{0,6}(-[0-9]{0,6})?:[0-9]{0,6}(-[0-9]{0,6})?(/(tcp|udp|sctp|x))?"
)
MOUNTS = _valueish(
    r"(/|\.\.?/)?[a-z.]{0,6}(/[a-z.]{0,6}){0,2}:(/|\.\./)?[a-z.]{0,6}(/[a-z.]{0,4}){0,2}(:(ro|rw|z|Z|rro|xx))?"
)
# -v makes a missing host directory (docker does): host paths stay inside HOST_BASE, never anywhere else.
HOST_BASE = "/tmp/pycontain-fuzz-volumes"
_NOT_ABSOLUTE = ANY_TEXT.filter(lambda v: not v.startswith("/"))
VOLUMES = st.one_of(
    st.builds(
        lambda rel, rest: f"{HOST_BASE}/{rel}:{rest}",
        st.from_regex(r"[a-z]{1,6}(/[a-z]{1,6}){0,2}", fullmatch=True),
        st.from_regex(r"(/|\.\./)?[a-z.]{0,6}(/[a-z.]{0,4}){0,2}(:(ro|rw|z|Z|rro|xx))?", fullmatch=True),
    ),
    _NOT_ABSOLUTE,
    st.from_regex(r"[a-z.]{0,6}:[a-z/.:]{0,12}", fullmatch=True),
)
CPUSETS = _valueish(r"[0-9]{0,12}(-[0-9]{0,12})?(,[0-9]{0,3}(-[0-9]{0,3})?){0,2}")
SIGNALS = _valueish(r"(SIG)?[A-Za-z]{1,6}[0-9+-]{0,3}|[0-9]{1,4}|-[0-9]{1,3}|RTMIN\+[0-9]{1,2}")
NAMES = st.one_of(
    ANY_TEXT, st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]{0,140}|\.\.?|[a-z./]{1,10}", fullmatch=True)
)


def _names_value(line: str, value: str) -> bool:
    """Whether an error line names ``value`` (as given, stripped, quoted by repr, or as the number it reads as)."""
    if not value.strip():
        return repr(value) in line or "''" in line or '""' in line or "empty" in line
    forms = {value, value.strip(), repr(value)[1:-1], repr(value.strip())[1:-1]}
    try:
        forms.add(str(int(value.strip())))
    except ValueError:
        pass
    try:
        forms.add(str(parse_size(value)))  # sizes may be named in bytes
    except PycontainError:
        pass
    # Or the offending part of a compound value, quoted: "/dev/x" of "/dev/x:1mb", "abc" of "nofile=abc".
    parts = {q for sep in ":=," for q in value.split(sep) if q and q != value}
    return any(f and f in line for f in forms) or any(repr(q) in line for q in parts)


class Runner:
    """One state root for a whole test; after each example it must hold nothing."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.keep: set[str] = set()  # containers a test made on purpose

    def __call__(self, *args: str, leave: bool = False, timeout: float = 60) -> subprocess.CompletedProcess:
        argv = [sys.executable, "-m", "pycontain", "--root", self.root, *args]
        env = {k: v for k, v in os.environ.items() if k != "PYCONTAIN_CRASH_AT"}
        if leave:  # OCI create: the container's process keeps its stdio, which must not be our pipe
            import tempfile

            with tempfile.TemporaryFile("w+") as err:
                p = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    text=True,
                    timeout=timeout,
                    env=env,
                )
                err.seek(0)
                p.stderr = err.read()
            return p
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL
        )

    def entries(self) -> list[str]:
        if not os.path.isdir(self.root):
            return []
        return sorted(n for n in os.listdir(self.root) if n != ".lock" and n not in self.keep)

    def check(
        self,
        p: subprocess.CompletedProcess,
        value: str | None,
        *,
        ok_codes: tuple[int, ...] = (0,),
        unnamed_ok: tuple[str, ...] = (),
    ) -> None:
        """A value either works or gets one line naming it; ``unnamed_ok``: documented messages about a
        *valid* value that are not about the value itself (e.g. a container that is not running)."""
        assert "Traceback" not in p.stderr, p.stderr
        if p.returncode not in ok_codes:
            assert p.returncode == 125, (p.returncode, p.stderr)
            assert p.stderr.endswith("\n") and p.stderr.count("\n") == 1, f"not one line: {p.stderr!r}"
            line = p.stderr[:-1]
            assert line.startswith("pycontain: ") and "internal error" not in line, line
            if value is not None and not any(u in line for u in unnamed_ok):
                assert _names_value(line, value), f"{line!r} does not name {value!r}"
        assert self.entries() == [], f"left in the state root: {self.entries()}"


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> Runner:
    import shutil

    root = str(tmp_path_factory.mktemp("fuzz") / "state")
    r = Runner(root)
    try:
        yield r
    finally:
        from conftest import _remove_all

        _remove_all(root)
        shutil.rmtree(HOST_BASE, ignore_errors=True)


@pytest.fixture
def stopped(runner: Runner) -> str:
    """A container that has exited: commands on it get as far as their own checks, and never signal anything."""
    p = runner("run", "--name", "stopped", "default", "--", "true")
    assert p.returncode == 0, p.stderr
    runner.keep = set(os.listdir(runner.root)) - {".lock"}
    try:
        yield "stopped"
    finally:
        runner.keep = set()
        runner("rm", "-f", "stopped")


# -- run's values --------------------------------------------------------------------------------------

RUN_VALUES = [
    ("-m", SIZES),
    ("--memory-swap", SIZES),
    ("--memory-reservation", SIZES),
    ("--cpus", NUMBERS),
    ("-c", NUMBERS),
    ("--cpu-quota", NUMBERS),
    ("--cpu-period", NUMBERS),
    ("--pids-limit", NUMBERS),
    ("--blkio-weight", NUMBERS),
    ("--cpuset-cpus", CPUSETS),
    ("--cpuset-mems", CPUSETS),
    ("-v", VOLUMES),
    ("--tmpfs", MOUNTS),
    ("--ulimit", _valueish(r"[a-z]{0,8}=-?[0-9]{0,21}(:-?[0-9]{0,21})?")),
    ("--cap-add", _valueish(r"(CAP_)?[A-Z_]{0,12}")),
    ("--security-opt", _valueish(r"[a-z\-]{0,20}(=[a-z/.]{0,10})?")),
    ("-u", _valueish(r"[a-z0-9]{0,10}(:[a-z0-9]{0,10})?")),
    ("-w", MOUNTS),
    ("-h", NAMES),
    ("--name", NAMES),
    ("--device-read-bps", _valueish(r"/dev/[a-z]{0,4}:[0-9]{0,5}[kmg]?b?")),
    ("-e", ANY_TEXT),
    ("--network", NAMES),
    # Not --cgroup-parent: a valid one is a cgroup outside our own, which these tests must never make.
]


@FUZZ
@given(st.data())
@example(None)
def test_run_values(runner: Runner, data) -> None:
    if data is None:  # the explicit examples: a very long value for each option in turn
        # Values that once broke pycontain: a child failing before its parent's handshake exited 0 in
        # silence; -v over / made mount points in the host's directory; ids past 32 bits; 5000 digits.
        for flag, value in (
            ("--tmpfs", "/x:size=abc"),
            ("-v", f"{HOST_BASE}/v:/"),
            ("-u", "4294967296"),
            ("--cpuset-cpus", "0-999999999"),
            ("--pids-limit", "99999999999999999999999"),
        ):
            p = runner("run", "--rm", flag, value, "default", "--", "echo", "fuzz-ok")
            assert p.returncode == 125, (flag, value, p)
            runner.check(p, value)
        for flag, _ in RUN_VALUES:
            for value in (LONG, HUGE, "/", ".."):
                p = runner("run", "--rm", flag, value, "default", "--", "echo", "fuzz-ok")
                try:
                    runner.check(p, value)
                    assert p.returncode != 0 or p.stdout == "fuzz-ok\n", (
                        f"exit 0 without the command's output: {p}"
                    )
                except AssertionError as e:
                    raise AssertionError(f"{flag} <{len(value)} characters>: {e}") from None
        return
    flag, strategy = data.draw(st.sampled_from(RUN_VALUES), label="flag")
    value = data.draw(strategy, label="value")
    p = runner("run", "--rm", flag, value, "default", "--", "echo", "fuzz-ok")
    runner.check(p, value)
    # Success means the command ran: a runtime failure must never pass for an exit status 0.
    assert p.returncode != 0 or p.stdout == "fuzz-ok\n", p


@FUZZ
@given(flag=st.sampled_from(["-p", "--publish"]), value=PORTS)
def test_publish_values(runner: Runner, flag: str, value: str) -> None:
    # --network none: a valid port is refused for want of a bridge, nothing is attached to any network.
    p = runner("run", "--rm", "--network", "none", flag, value, "default", "--", "true")
    runner.check(p, value)


# -- references to containers, ids and names ------------------------------------------------------------


@FUZZ
@given(
    ref=NAMES,
    command=st.sampled_from(
        [
            ("rm", "-f"),
            ("inspect",),
            ("logs",),
            ("stop", "-t", "0"),
            ("kill",),
            ("exec", "{}", "true"),
            ("pause",),
            ("state",),
            ("start",),
            ("delete", "--force"),
            ("stats", "--no-stream"),
            ("update", "--memory", "64m"),
        ]
    ),
)
@example(ref="../../etc", command=("rm", "-f"))
@example(ref="a/b", command=("inspect",))
@example(ref=HUGE, command=("rm", "-f"))
def test_container_references(runner: Runner, ref: str, command: tuple[str, ...]) -> None:
    args = [a.replace("{}", ref) for a in command] if "{}" in command else [*command, ref]
    if ref.startswith("-"):
        args.insert(len(args) - 1 if "{}" not in command else 1, "--")
    runner.check(runner(*args), ref)


@FUZZ
@given(value=SIGNALS)
@example(value="0")
@example(value="65")
@example(value="SIGRTMAX+1")
def test_kill_signals(runner: Runner, stopped: str, value: str) -> None:
    # A valid signal reaches the 'not running' check (nothing is ever signalled); an invalid one is named.
    p = runner("kill", "-s", value, stopped)
    runner.check(p, value, unnamed_ok=("is not running",))
    assert runner("inspect", stopped).returncode == 0
    if _signal_like(value):  # runc's form; anything else reads as docker's 'kill ID ID'
        p = runner("kill", stopped, *(["--"] if value.startswith("-") else []), value)
        lines = p.stderr.splitlines()
        if len(lines) == 2 and any(n.startswith(value) for n in os.listdir(runner.root) if len(n) == 64):
            # Not a signal ("0"), but a prefix of the container's id: docker's form 'kill ID ID' (a
            # container by that name wins over runc's form), the container named twice, a line for each.
            assert p.returncode == 125 and all("is not running" in line for line in lines), p.stderr
        else:
            runner.check(p, value, unnamed_ok=("is not running",))


@pytest.fixture
def running(runner: Runner) -> str:
    p = runner("run", "-d", "--name", "running", "default", "--", "sleep", "3600")
    assert p.returncode == 0, p.stderr
    runner.keep = set(os.listdir(runner.root)) - {".lock"}
    try:
        yield "running"
    finally:
        runner.keep = set()
        runner("rm", "-f", "running")


@FUZZ
@given(
    flag=st.sampled_from(["-u", "-w", "-e"]),
    value=st.one_of(ANY_TEXT, MOUNTS, _valueish(r"[a-z0-9]{0,10}(:[a-z0-9]{0,12})?")),
)
@example(flag="-u", value="99999999999")
@example(flag="-w", value=HUGE)
def test_exec_values(runner: Runner, running: str, flag: str, value: str) -> None:
    p = runner("exec", flag, value, running, "true")
    # A valid value runs 'true'; a working directory that does not exist is the command's failure (126/127).
    runner.check(p, value, ok_codes=(0, 126, 127) if flag == "-w" else (0,))


@FUZZ
@given(value=NUMBERS)
@example(value="nan")
def test_stop_timeouts(runner: Runner, stopped: str, value: str) -> None:
    # On a stopped container nothing waits: a timeout is checked and refused, or accepted and unused.
    p = runner("stop", "-t", value, stopped, timeout=30)
    runner.check(p, value)


UPDATE_VALUES = [
    ("--memory", SIZES),
    ("--memory-swap", SIZES),
    ("--memory-reservation", SIZES),
    ("--cpus", NUMBERS),
    ("--cpu-shares", NUMBERS),
    ("--cpu-quota", NUMBERS),
    ("--cpu-period", NUMBERS),
    ("--cpuset-cpus", CPUSETS),
    ("--cpuset-mems", CPUSETS),
    ("--pids-limit", NUMBERS),
    ("--blkio-weight", NUMBERS),
]


@FUZZ
@given(data=st.data())
def test_update_values(runner: Runner, running: str, data) -> None:
    flag, strategy = data.draw(st.sampled_from(UPDATE_VALUES), label="flag")
    value = data.draw(strategy, label="value")
    p = runner("update", flag, value, running)
    # A valid value may still clash with the container's other limits (e.g. swap below memory): named too.
    # An empty one reads as no flag at all.
    runner.check(p, value, unnamed_ok=("nothing to update",) if not value.strip() else ())
    assert runner("exec", running, "true").returncode == 0, "the container survives any update"


def _signal_like(value: str) -> bool:
    name = value.upper()
    return (
        value.lstrip("-").isdigit()
        or name in signal.Signals.__members__
        or (name.startswith("SIG") and name[3:].replace("+", "").replace("-", "").isalnum())
    )


# -- OCI bundles ----------------------------------------------------------------------------------------


def _base_spec() -> dict:
    from pycontain.spec import default_spec

    spec = default_spec()
    spec["process"]["terminal"] = False
    spec["process"]["args"] = ["true"]
    # A bundle's root is used in place, and fuzzed mounts make their mount points in it: each bundle points
    # at a private copy of the built-in root filesystem (bundle/rootfs), never at the shared one.
    spec["root"] = {"path": "rootfs", "readonly": True}
    spec["linux"]["resources"] = {
        "memory": {"limit": 64 << 20},
        "cpu": {"shares": 512, "cpus": "0"},
        "pids": {"limit": 64},
    }
    return spec


def _paths(doc: object, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


BASE = _base_spec() if os.geteuid() == 0 else {}
# Deepest fields first: hypothesis favours the first choices, and whole sections are the least interesting.
PATHS = sorted(_paths(BASE), key=lambda path: -len(path))
JSON_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    ANY_TEXT,
    st.sampled_from(["", "/", "..", "../../etc", "/proc"]),
)
JSON = st.recursive(
    JSON_LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(ANY_TEXT, inner, max_size=4)),
    max_leaves=8,
)
# Never where a container would change the host: an absolute cgroupsPath would be made outside our cgroup.
UNSAFE = {("linux", "cgroupsPath")}


def _same_type(value: object) -> st.SearchStrategy:
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.one_of(st.integers(-(2**70), 2**70), st.integers(-1, 70000))
    if isinstance(value, str):
        return st.one_of(
            ANY_TEXT, st.sampled_from(["", "/", "..", "../../etc", "/proc", "/tmp/x", "bind", "ro"])
        )
    if isinstance(value, list):
        return st.lists(st.sampled_from(value), max_size=len(value)) if value else st.just([])
    if isinstance(value, dict):
        return (
            st.sets(st.sampled_from(sorted(value)), max_size=len(value)).map(
                lambda keep: {k: v for k, v in value.items() if k in keep}
            )
            if value
            else st.just({})
        )
    return JSON


@st.composite
def documents(draw) -> str:
    if draw(st.integers(0, 9)) == 0:  # now and then not a config at all
        return draw(st.one_of(ANY_TEXT, JSON.map(json.dumps)))
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            how = draw(st.sampled_from(["drop", "any", "same", "same"]))
            if how == "drop" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif how == "same":  # a value of the same JSON type gets past the parser, into create itself
                parent[path[-1]] = draw(_same_type(parent[path[-1]]))
            else:
                parent[path[-1]] = draw(JSON)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation replaced an ancestor
    linux = doc.get("linux")
    if (
        isinstance(linux, dict)
        and isinstance(linux.get("cgroupsPath"), str)
        and linux["cgroupsPath"].startswith("/")
    ):
        linux["cgroupsPath"] = linux["cgroupsPath"].lstrip("/")
    root = doc.get("root")
    if isinstance(root, dict) and isinstance(root.get("path"), str):
        # Never a root outside the bundle: "/" or "../../.." would be the host's own, used in place.
        path = root["path"]
        if os.path.isabs(path) or os.path.normpath(path).startswith(".."):
            root["path"] = "no-such-rootfs"
    return json.dumps(doc)


@pytest.fixture(scope="module")
def rootfs_copy(tmp_path_factory) -> str:
    import rootfs_builder

    dest = str(tmp_path_factory.mktemp("rootfs") / "rootfs")
    subprocess.run(["cp", "-a", rootfs_builder.default_path(), dest], check=True)
    return dest


@FUZZ
@given(doc=documents(), cid=st.one_of(st.just("fuzzed"), NAMES))
def test_oci_config_documents(runner: Runner, rootfs_copy: str, tmp_path_factory, doc: str, cid: str) -> None:
    bundle = tmp_path_factory.mktemp("bundle")
    (bundle / "config.json").write_text(doc)
    (bundle / "rootfs").symlink_to(rootfs_copy)
    args = ["create", "--bundle", str(bundle), *(["--"] if cid.startswith("-") else []), cid]
    p = runner(*args, leave=True)
    if p.returncode == 0:
        d = runner("delete", "--force", cid)
        assert d.returncode == 0, (d.stderr, doc)
    # The offending value of a document is a field, named by its path ("process.args: ..."): only the
    # shape of the error is checked, and the id when it is the id that is refused.
    named = cid if "container name" in p.stderr or "container id" in p.stderr else None
    runner.check(p, named)
