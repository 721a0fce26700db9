"""pycontain.security piece by piece: option parsing, capability sets, rlimits, the seccomp compiler
(checked by running its BPF program through a small classic-BPF interpreter, for every architecture
of the filter, including ones this machine cannot execute), the compiled-filter cache, and
mask_paths in a forked child's private mount namespace."""

from __future__ import annotations

import errno
import json
import os
import struct
import sys

import pytest
from conftest import ROOT_REQUIRED, mountinfo

from pycontain import libc
from pycontain.errors import InvalidArgument, PermissionDenied, Unsupported
from pycontain.security import apply as security_apply
from pycontain.security import caps, options, seccomp
from pycontain.security.options import SecurityOptions
from pycontain.security.seccomp_default import PROFILE

ALL_CAPS = (1 << len(caps.CAPABILITIES)) - 1
NO_SYS_RESOURCE = ALL_CAPS & ~(1 << 24)  # this sandbox's bounding set
DOCKER_DEFAULT_CAPS = 0xA80425FB
CAP = {name: i for i, name in enumerate(caps.CAPABILITIES)}


# -- options ------------------------------------------------------------------------------------------


def test_from_cli_defaults():
    o = SecurityOptions.from_cli()
    assert (o.cap_add, o.cap_drop, o.privileged, o.no_new_privs, o.seccomp, o.ulimits) == (
        [],
        [],
        False,
        True,
        "default",
        [],
    )
    assert o.capabilities is None and o.seccomp_profile is None


@pytest.mark.parametrize("name", ["NET_ADMIN", "net_admin", "CAP_NET_ADMIN", "cap_net_admin", " Net_Admin "])
def test_capability_names_any_case_with_or_without_prefix(name):
    assert SecurityOptions.from_cli(cap_add=[name]).cap_add == ["CAP_NET_ADMIN"]


def test_all_is_a_capability_name():
    o = SecurityOptions.from_cli(cap_add=["all"], cap_drop=["ALL"])
    assert (o.cap_add, o.cap_drop) == (["ALL"], ["ALL"])


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"cap_add": ["NET_ADMINN"]}, "invalid --cap-add 'NET_ADMINN'"),
        ({"cap_drop": ["CAP_FOO"]}, "invalid --cap-drop 'CAP_FOO'"),
        ({"security_opts": ["apparmor=unconfined"]}, "invalid --security-opt 'apparmor=unconfined'"),
        ({"security_opts": ["label=disable"]}, "invalid --security-opt 'label=disable'"),
        ({"security_opts": ["seccomp"]}, "invalid --security-opt 'seccomp'"),
        ({"security_opts": ["no-new-privileges=maybe"]}, "invalid --security-opt 'no-new-privileges=maybe'"),
        (
            {"security_opts": ["seccomp=/no/such/file.json"]},
            "cannot read seccomp profile '/no/such/file.json'",
        ),
        ({"ulimits": ["nofile"]}, "invalid --ulimit 'nofile'"),
        ({"ulimits": ["nofiles=10"]}, "unknown limit 'nofiles'"),
        ({"ulimits": ["nofile=ten"]}, "'ten' is not a number"),
        ({"ulimits": ["nofile=20:10"]}, "the soft limit 20 is above the hard limit 10"),
        ({"ulimits": ["nofile=-5"]}, "'-5' is not a number"),
    ],
)
def test_from_cli_rejects_with_one_line_naming_the_value(kw, needle):
    with pytest.raises(InvalidArgument) as e:
        SecurityOptions.from_cli(**kw)
    assert needle in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("opt", "nnp"),
    [
        ("no-new-privileges", True),
        ("no-new-privileges=true", True),
        ("no-new-privileges=false", False),
        ("no-new-privileges:true", True),
        ("No-New-Privileges=FALSE", False),
    ],
)
def test_no_new_privileges_forms(opt, nnp):
    assert SecurityOptions.from_cli(security_opts=[opt]).no_new_privs is nnp


def test_privileged_turns_no_new_privs_off_unless_asked():
    assert SecurityOptions.from_cli(privileged=True).no_new_privs is False
    assert SecurityOptions.from_cli(privileged=True, security_opts=["no-new-privileges"]).no_new_privs is True
    assert SecurityOptions(privileged=True).no_new_privs is False
    assert SecurityOptions().no_new_privs is True


def test_seccomp_opts(tmp_path):
    assert SecurityOptions.from_cli(security_opts=["seccomp=unconfined"]).seccomp == "unconfined"
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}))
    o = SecurityOptions.from_cli(security_opts=[f"seccomp={path}"])
    assert o.seccomp == str(path) and o.seccomp_profile == {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}
    path.write_text("{not json")
    with pytest.raises(InvalidArgument, match="is not valid JSON"):
        SecurityOptions.from_cli(security_opts=[f"seccomp={path}"])
    path.write_text("[1, 2]")
    with pytest.raises(InvalidArgument, match="expected an object with a defaultAction"):
        SecurityOptions.from_cli(security_opts=[f"seccomp={path}"])


def test_to_dict_round_trip_is_json():
    o = SecurityOptions.from_cli(
        cap_add=["NET_ADMIN"],
        cap_drop=["MKNOD"],
        security_opts=["seccomp=unconfined"],
        ulimits=["nofile=10:20"],
    )
    d = json.loads(json.dumps(o.to_dict()))
    o2 = SecurityOptions.from_dict(d)
    assert o2.to_dict() == o.to_dict()


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("nofile=1024:2048", ("nofile", 1024, 2048)),
        ("nproc=64", ("nproc", 64, 64)),
        ("NOFILE=5:6", ("nofile", 5, 6)),
        ("core=-1", ("core", options.RLIM_INFINITY, options.RLIM_INFINITY)),
        ("memlock=unlimited", ("memlock", options.RLIM_INFINITY, options.RLIM_INFINITY)),
        ("stack=8192:-1", ("stack", 8192, options.RLIM_INFINITY)),
        ("as=18446744073709551615", ("as", options.RLIM_INFINITY, options.RLIM_INFINITY)),
        ("rttime=0", ("rttime", 0, 0)),
    ],
)
def test_parse_ulimit(spec, expected):
    assert options.parse_ulimit(spec) == expected


# -- capabilities ---------------------------------------------------------------------------------


def _caps(**kw) -> tuple[int, int, int, int, int]:
    available = kw.pop("available", NO_SYS_RESOURCE)
    return caps.resolve_capabilities(SecurityOptions(**kw), available)


def test_default_capabilities_are_dockers():
    assert _caps() == (DOCKER_DEFAULT_CAPS,) * 3 + (0, 0)


def test_privileged_and_add_all_give_exactly_what_we_have():
    assert _caps(privileged=True)[0] == NO_SYS_RESOURCE
    assert _caps(privileged=True, cap_drop=["CAP_CHOWN"])[0] == NO_SYS_RESOURCE  # docker ignores drops then
    assert _caps(cap_add=["ALL"])[0] == NO_SYS_RESOURCE
    assert _caps(cap_add=["ALL"], cap_drop=["CAP_NET_RAW"])[0] == NO_SYS_RESOURCE & ~(1 << CAP["CAP_NET_RAW"])


def test_drop_all_keeps_only_the_added():
    assert _caps(cap_drop=["ALL"])[:3] == (0, 0, 0)
    assert _caps(cap_drop=["ALL"], cap_add=["CAP_NET_BIND_SERVICE"])[0] == 1 << 10


def test_drop_and_add_on_the_default_set():
    assert _caps(cap_drop=["CAP_MKNOD", "CAP_NET_RAW"])[0] == DOCKER_DEFAULT_CAPS & ~(1 << 27) & ~(1 << 13)
    assert _caps(cap_add=["CAP_SYS_ADMIN"])[0] == DOCKER_DEFAULT_CAPS | 1 << 21
    # docker: an add wins over a drop of the same capability.
    assert _caps(cap_add=["CAP_SYS_ADMIN"], cap_drop=["CAP_SYS_ADMIN"])[0] == DOCKER_DEFAULT_CAPS | 1 << 21


def test_a_capability_we_lack_cannot_be_added():
    with pytest.raises(PermissionDenied, match="cannot add CAP_SYS_RESOURCE"):
        _caps(cap_add=["CAP_SYS_RESOURCE"])
    # ... but the default set is cut to what we have, silently.
    assert _caps(available=DOCKER_DEFAULT_CAPS & ~1)[0] == DOCKER_DEFAULT_CAPS & ~1


def test_oci_exact_sets_win_over_add_and_drop():
    caps = {
        "bounding": ["CAP_CHOWN", "CAP_SYS_RESOURCE"],
        "permitted": ["CAP_CHOWN"],
        "effective": [],
        "inheritable": ["CAP_CHOWN"],
        "ambient": ["CAP_CHOWN"],
    }
    assert _caps(capabilities=caps, cap_add=["CAP_SYS_ADMIN"]) == (1, 1, 0, 1, 1)  # SYS_RESOURCE: not ours


def test_prepare_reads_our_own_bounding_set():
    p = security_apply.prepare(SecurityOptions(privileged=True))
    assert p.bounding == caps.own_bounding_set()
    assert p.program is None and p.no_new_privs is False


def test_prepare_defaults(tmp_path):
    p = security_apply.prepare(None, cache_dir=str(tmp_path))
    assert p.bounding == p.permitted == p.effective == DOCKER_DEFAULT_CAPS & caps.own_bounding_set()
    assert p.inheritable == p.ambient == 0
    assert p.no_new_privs and not p.seccomp_early
    assert p.program and len(p.program) % 8 == 0
    assert p.capability_names()[:2] == ["CAP_CHOWN", "CAP_DAC_OVERRIDE"]


class _PrctlRecorder:
    """Stands in for python-prctl's ``_prctl`` (its numbers, the real ones): records instead of calling."""

    def __init__(self, real) -> None:
        self.real = real
        self.calls: list[tuple] = []

    def __getattr__(self, name: str):
        return getattr(self.real, name)

    def prctl(self, option: int, *args):
        self.calls.append(("prctl", option, *args))
        return True  # PR_CAPBSET_READ: every capability is still in the bounding set

    def set_caps(self, *lists):
        self.calls.append(("set_caps", *lists))


def test_capabilities_keep_caps_and_no_new_privs_go_through_python_prctl(monkeypatch):
    """The child's capability sets, bounding set, keep-caps and no_new_privs are python-prctl's calls; only
    the ambient set (python-prctl 1.8.1 has no PR_CAP_AMBIENT) goes through libc."""
    import _prctl

    rec = _PrctlRecorder(_prctl)
    monkeypatch.setitem(sys.modules, "_prctl", rec)
    through_libc: list[tuple] = []
    monkeypatch.setattr(libc, "prctl", lambda what, *args: through_libc.append((what, *args)) or 0)
    p = security_apply.Prepared()
    p.last_cap = 40
    p.bounding = p.permitted = 1 << 0 | 1 << 10  # CHOWN, NET_BIND_SERVICE
    p.effective, p.inheritable, p.ambient = 1 << 10, 0, 1 << 10
    security_apply.before_setuid(p)
    security_apply.after_setuid(p, 1000)
    security_apply.last(p)
    drops = [c[2] for c in rec.calls if c[:2] == ("prctl", _prctl.PR_CAPBSET_DROP)]
    assert drops == [c for c in range(41) if c not in (0, 10)]
    sets = [c for c in rec.calls if c[0] == "set_caps"]
    known = range(41)
    assert sets == [
        ("set_caps", [], [0, 10], [], list(known), [c for c in known if c not in (0, 10)], list(known))
    ]
    flags = [
        c[1:]
        for c in rec.calls
        if c[0] == "prctl" and c[1] != _prctl.PR_CAPBSET_READ and c[1] != _prctl.PR_CAPBSET_DROP
    ]
    assert flags == [
        (_prctl.PR_SET_KEEPCAPS, 1),
        (_prctl.PR_SET_KEEPCAPS, 0),
        (_prctl.PR_SET_NO_NEW_PRIVS, 1),
    ]
    assert [c[0] for c in through_libc] == ["PR_CAP_AMBIENT", "PR_CAP_AMBIENT_RAISE"]


def test_prepare_variants(tmp_path):
    assert security_apply.prepare(SecurityOptions(no_new_privs=False), cache_dir=str(tmp_path)).seccomp_early
    assert security_apply.prepare(SecurityOptions(seccomp="unconfined")).program is None
    p = security_apply.prepare(SecurityOptions(ulimits=["nofile=10:20", "nproc=5", "nofile=30:40"]))
    assert sorted(r[:3] for r in p.rlimits) == [(6, 5, 5), (7, 30, 40)]  # the later nofile wins


# -- the seccomp compiler -----------------------------------------------------------------------------

AUDIT_X86_64, AUDIT_I386, AUDIT_AARCH64, X32_BIT = 0xC000003E, 0x40000003, 0xC00000B7, 0x40000000
ALLOW, KILL = 0x7FFF0000, 0


def errno_action(e: int) -> int:
    return 0x00050000 | e


ALU = {
    0x00: lambda a, b: a + b,
    0x10: lambda a, b: a - b,
    0x50: lambda a, b: a & b,
    0x40: lambda a, b: a | b,
    0xA0: lambda a, b: a ^ b,
    0x60: lambda a, b: a << b,
    0x70: lambda a, b: a >> b,
}


def run_bpf(program: bytes, nr: int, arch: int, args: tuple[int, ...] = ()) -> int:
    """A classic-BPF interpreter for seccomp programs: returns the action for one system call."""
    a6 = list(args) + [0] * (6 - len(args))
    data = struct.pack("=iIQ6Q", nr, arch, 0, *a6)
    ins = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    acc = x = 0
    mem = [0] * 16
    pc = 0
    for _ in range(100000):
        code, jt, jf, k = ins[pc]
        pc += 1
        cls = code & 0x07
        if cls == 0x00:  # LD
            if code == 0x20:
                acc = struct.unpack_from("=I", data, k)[0]
            elif code == 0x60:
                acc = mem[k]
            elif code == 0x00:
                acc = k
            else:
                raise AssertionError(f"LD {code:#x}")
        elif cls == 0x01:  # LDX
            x = mem[k] if code == 0x61 else k
        elif cls == 0x02:
            mem[k] = acc
        elif cls == 0x03:
            mem[k] = x
        elif cls == 0x04:  # ALU
            acc = ALU[code & 0xF0](acc, x if code & 0x08 else k) & 0xFFFFFFFF
        elif cls == 0x05:  # JMP
            op = code & 0xF0
            src = x if code & 0x08 else k
            if op == 0x00:
                pc += k
                continue
            cond = {0x10: acc == src, 0x20: acc > src, 0x30: acc >= src, 0x40: bool(acc & src)}[op]
            pc += jt if cond else jf
        elif cls == 0x06:  # RET
            return acc if code & 0x10 else k
        elif cls == 0x07:
            if code == 0x07:
                x = acc
            else:
                acc = x
    raise AssertionError("BPF program did not finish")


def _resolve(name: str, arch: str) -> int:
    import ctypes

    import pyseccomp

    f = pyseccomp._libseccomp.seccomp_syscall_resolve_name_arch
    f.argtypes = (ctypes.c_uint32, ctypes.c_char_p)
    f.restype = ctypes.c_int
    return f(seccomp._ARCH_TOKENS[arch], name.encode())


@pytest.fixture(scope="module")
def default_compiled():
    if os.uname().machine != "x86_64":
        pytest.skip("the architecture checks are written for x86_64 hosts")
    return seccomp.compile_filter(PROFILE, DOCKER_DEFAULT_CAPS)


def test_default_profile_shape(default_compiled):
    c = default_compiled
    assert c.arches == ["X86_64", "X86", "X32"]
    assert c.default_action == errno_action(errno.EPERM)
    assert c.rules > 300
    assert c.max_nr["X86_64"] >= _resolve("clone3", "X86_64")
    assert c.max_nr["X32"] & X32_BIT
    assert 0 < c.instructions <= 4096


@pytest.mark.parametrize(("arch", "bit"), [(AUDIT_X86_64, 0), (AUDIT_I386, None), (AUDIT_X86_64, X32_BIT)])
def test_default_profile_on_every_architecture(default_compiled, arch, bit):
    prog = default_compiled.program
    name_arch = {AUDIT_I386: "X86"}.get(arch, "X32" if bit else "X86_64")

    def act(name: str, *args: int) -> int:
        n = _resolve(name, name_arch)
        assert n >= 0, name
        return run_bpf(prog, n, arch, args)

    for ok in ("read", "write", "openat", "execve", "exit_group", "futex", "getpid"):
        assert act(ok) == ALLOW, ok
    for denied in (
        "mount",
        "umount2",
        "unshare",
        "setns",
        "keyctl",
        "add_key",
        "kexec_load",
        "reboot",
        "init_module",
        "finit_module",
        "delete_module",
        "bpf",
        "perf_event_open",
        "swapon",
        "settimeofday",
        "acct",
        "pivot_root",
        "open_by_handle_at",
        "userfaultfd",
        "iopl",
        "ioperm",
    ):
        if _resolve(denied, name_arch) >= 0:
            assert act(denied) == errno_action(errno.EPERM), denied
    assert act("clone3") == errno_action(errno.ENOSYS)
    clone_flags_arg = (0x11,)  # SIGCHLD: a fork
    assert act("clone", *clone_flags_arg) == ALLOW
    assert act("clone", 0x10000000 | 0x11) == errno_action(errno.EPERM)  # CLONE_NEWUSER
    assert act("personality", 0) == ALLOW and act("personality", 0xFFFFFFFF) == ALLOW
    assert act("personality", 0x0040000) == errno_action(errno.EPERM)
    # Newer than anything the profile names: ENOSYS; a number no kernel has: ENOSYS.
    top = default_compiled.max_nr[name_arch]
    assert run_bpf(prog, top + 1, arch) == errno_action(errno.ENOSYS)
    assert run_bpf(prog, (bit or 0) + 3000, arch) == errno_action(errno.ENOSYS)


@pytest.mark.slow  # ~20k BPF runs in Python: CI's make test runs it, make check does not
def test_binary_tree_and_list_programs_agree_on_every_call(default_compiled):
    # libseccomp's binary-tree layout (what we load) against its plain list, call by call, on each
    # architecture, with argument values that exercise the clone, personality and socket conditions.
    linear = seccomp.compile_filter(PROFILE, DOCKER_DEFAULT_CAPS, optimize=1).program
    assert linear != default_compiled.program
    arg_sets = [(), (0x10000000 | 0x11,), (0x11,), (40,), (0x0040000,), (0xFFFFFFFF,)]
    for arch, base in ((AUDIT_X86_64, 0), (AUDIT_I386, 0), (AUDIT_X86_64, X32_BIT)):
        for n in range(base, base + 600):
            for args in arg_sets:
                assert run_bpf(default_compiled.program, n, arch, args) == run_bpf(linear, n, arch, args), (
                    hex(arch),
                    n,
                    args,
                )


def test_socket_rule_and_i386_socketcall(default_compiled):
    prog = default_compiled.program
    sock = _resolve("socket", "X86_64")
    assert run_bpf(prog, sock, AUDIT_X86_64, (2, 1, 0)) == ALLOW
    assert run_bpf(prog, sock, AUDIT_X86_64, (40, 1, 0)) == errno_action(errno.EPERM)  # AF_VSOCK
    assert run_bpf(prog, _resolve("socketcall", "X86"), AUDIT_I386) == ALLOW


def test_a_foreign_architecture_is_killed(default_compiled):
    assert run_bpf(default_compiled.program, 63, AUDIT_AARCH64) in (KILL, 0x80000000)


def test_capabilities_open_rules_like_docker():
    c = seccomp.compile_filter(PROFILE, DOCKER_DEFAULT_CAPS | 1 << 21 | 1 << 22)  # SYS_ADMIN, SYS_BOOT
    for name in ("mount", "unshare", "setns", "clone3", "reboot", "bpf", "perf_event_open"):
        assert run_bpf(c.program, _resolve(name, "X86_64"), AUDIT_X86_64) == ALLOW, name
    assert run_bpf(c.program, _resolve("clone", "X86_64"), AUDIT_X86_64, (0x10000000,)) == ALLOW
    assert run_bpf(c.program, _resolve("kexec_load", "X86_64"), AUDIT_X86_64) == errno_action(errno.EPERM)


def test_rule_counts_and_unknown_names_skipped():
    c = seccomp.compile_filter(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["read", "write", "no_such_call_xyz"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["close"], "action": "SCMP_ACT_ERRNO"},
            ],
        },
        0,
    )
    assert c.rules == 2  # close's rule is the default action: nothing to add
    assert c.skipped == ["no_such_call_xyz"]
    assert c.arches[0] == {"x86_64": "X86_64", "aarch64": "AARCH64"}.get(os.uname().machine, c.arches[0])
    assert len(c.arches) == 1  # no architectures, no archMap: the native one only


def test_args_same_index_become_separate_rules_and_conditions_apply():
    rule = {
        "names": ["personality"],
        "action": "SCMP_ACT_ALLOW",
        "args": [
            {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
            {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
        ],
    }
    c = seccomp.compile_filter({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [rule]}, 0)
    assert c.rules == 2
    masked = {
        "names": ["clone"],
        "action": "SCMP_ACT_ALLOW",
        "args": [{"index": 0, "value": 0xF0, "valueTwo": 0x10, "op": "SCMP_CMP_MASKED_EQ"}],
    }
    c = seccomp.compile_filter({"defaultAction": "SCMP_ACT_KILL_PROCESS", "syscalls": [masked]}, 0)
    if os.uname().machine == "x86_64":
        n = _resolve("clone", "X86_64")
        assert run_bpf(c.program, n, AUDIT_X86_64, (0x1F,)) == ALLOW
        assert run_bpf(c.program, n, AUDIT_X86_64, (0x2F,)) == 0x80000000


def test_includes_and_excludes():
    prof = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["write"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["close"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}},
            {"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["sparc"]}},
            {"names": ["gettid"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["sparc"]}},
        ],
    }
    assert seccomp.compile_filter(prof, 0).rules == 2  # write, gettid
    assert seccomp.compile_filter(prof, 1 << 21).rules == 2  # read, gettid


def test_oci_section_architectures_flags_and_errors():
    c = seccomp.compile_filter(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}],
        },
        0,
    )
    assert c.flags == 2 and c.default_action == errno_action(38)
    if os.uname().machine == "x86_64":
        assert c.arches == ["X86_64", "X86"]
    bad = [
        ({"defaultAction": "SCMP_ACT_NOPE"}, InvalidArgument, "unknown action 'SCMP_ACT_NOPE'"),
        ({"defaultAction": "SCMP_ACT_NOTIFY"}, Unsupported, "SCMP_ACT_NOTIFY"),
        ({"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_NEW_LISTENER"]}, Unsupported, ""),
        ({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_VAX"]}, InvalidArgument, "VAX"),
        (
            {
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [
                    {
                        "names": ["read"],
                        "action": "SCMP_ACT_ALLOW",
                        "args": [{"index": 7, "value": 1, "op": "SCMP_CMP_EQ"}],
                    }
                ],
            },
            InvalidArgument,
            "syscalls[0].args[0].index",
        ),
        (
            {
                "defaultAction": "SCMP_ACT_ERRNO",
                "syscalls": [
                    {
                        "names": ["read"],
                        "action": "SCMP_ACT_ALLOW",
                        "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ALMOST"}],
                    }
                ],
            },
            InvalidArgument,
            "unknown operator 'SCMP_CMP_ALMOST'",
        ),
    ]
    for prof, exc, needle in bad:
        with pytest.raises(exc, match=None) as e:
            seccomp.compile_filter(prof, 0)
        assert needle in str(e.value)


def test_allow_everything_compiles_to_nothing():
    assert seccomp.compile_filter({"defaultAction": "SCMP_ACT_ALLOW"}, 0).program is None


def test_default_program_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(seccomp, "_compiled_default", {})
    prog = seccomp.default_program(DOCKER_DEFAULT_CAPS, str(tmp_path))
    files = os.listdir(tmp_path)
    assert len(files) == 1 and files[0].endswith(".bpf")
    path = tmp_path / files[0]
    assert path.read_bytes() == prog and path.stat().st_mode & 0o777 == 0o600
    # A fresh process (an empty memory cache) reads the file instead of compiling.
    monkeypatch.setattr(seccomp, "_compiled_default", {})
    path.write_bytes(prog[:-8] + struct.pack("=HBBI", 6, 0, 0, 0x7FFF0000))
    assert seccomp.default_program(DOCKER_DEFAULT_CAPS, str(tmp_path))[-8:] == path.read_bytes()[-8:]
    # One that others could have written, or that is not whole instructions, is not trusted.
    for damage in ("mode", "size"):
        monkeypatch.setattr(seccomp, "_compiled_default", {})
        path.write_bytes(
            prog[:-8] + struct.pack("=HBBI", 6, 0, 0, 0x7FFF0000) + (b"x" if damage == "size" else b"")
        )
        os.chmod(path, 0o666 if damage == "mode" else 0o600)
        assert seccomp.default_program(DOCKER_DEFAULT_CAPS, str(tmp_path)) == prog
        path.write_bytes(prog)
        os.chmod(path, 0o600)
    # Other capabilities, another program (and another file).
    monkeypatch.setattr(seccomp, "_compiled_default", {})
    assert seccomp.default_program(DOCKER_DEFAULT_CAPS | 1 << 21, str(tmp_path)) != prog
    assert len(os.listdir(tmp_path)) == 2


def test_default_program_cache_is_keyed_by_content(tmp_path, monkeypatch):
    """The cache key follows the sources' content, not their mtimes: a checkout that rewrites them
    unchanged reuses the cached program; a changed profile gets a file of its own."""
    a, b = tmp_path / "seccomp.py", tmp_path / "seccomp_default.py"
    a.write_text("x = 1\n")
    b.write_text("PROFILE = {}\n")
    digest = seccomp.sources_digest([str(a), str(b)])
    os.utime(a, ns=(1, 1))
    assert seccomp.sources_digest([str(a), str(b)]) == digest
    b.write_text("PROFILE = {'defaultAction': 'SCMP_ACT_ERRNO'}\n")
    assert seccomp.sources_digest([str(a), str(b)]) != digest
    # The real key: the cache file's name holds the digest of the installed sources.
    monkeypatch.setattr(seccomp, "_compiled_default", {})
    cache = tmp_path / "cache"
    seccomp.default_program(DOCKER_DEFAULT_CAPS, str(cache))
    here = os.path.dirname(seccomp.__file__)
    installed = seccomp.sources_digest(
        [os.path.join(here, "seccomp.py"), os.path.join(here, "seccomp_default.py")]
    )
    (name,) = os.listdir(cache)
    assert name.endswith(f"-{installed}.bpf")
    assert (cache.stat().st_mode & 0o777) == 0o700


def test_default_profile_names_are_all_known_to_libseccomp_or_foreign():
    # Every name either resolves on some architecture or is newer than libseccomp: a typo would be
    # silently skipped, so look for names libseccomp has never heard of and that no kernel has.
    import pyseccomp

    unknown = sorted(
        {
            n
            for rule in PROFILE["syscalls"]
            for n in rule["names"]
            if pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, n) == -1
        }
    )
    # Calls libseccomp 2.5.4 (Debian 12) may not know yet; anything else is a typo.
    assert set(unknown) <= {
        "futex_requeue",
        "futex_wait",
        "futex_wake",
        "map_shadow_stack",
        "fchmodat2",
        "cachestat",
        "riscv_flush_icache",
        "s390_runtime_instr",
        "s390_pci_mmio_read",
        "s390_pci_mmio_write",
    }, unknown


# -- mask_paths ---------------------------------------------------------------------------------------


def _in_private_mount_ns(fn) -> dict:
    """Run ``fn`` in a forked child with its own mount namespace; it returns a JSON-able result."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            libc.unshare(libc.CLONE_NEWNS)
            libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
            out = {"ok": fn()}
        except BaseException as e:
            out = {"error": f"{type(e).__name__}: {e}"}
        try:
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    res = json.loads(data)
    assert "error" not in res, res["error"]
    return res["ok"]


def _errno_of(fn) -> str:
    try:
        fn()
    except OSError as e:
        return errno.errorcode[e.errno]
    return "OK"


@ROOT_REQUIRED
def test_mask_paths_in_a_private_mount_namespace(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("key material")
    d = tmp_path / "dir"
    d.mkdir()
    (d / "inside").write_text("x")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro_file = tmp_path / "ro-file"
    ro_file.write_text("y")
    flagged = tmp_path / "flagged"
    flagged.mkdir()
    before = mountinfo()

    def child() -> dict:
        libc.mount("tmpfs", str(flagged), "tmpfs", libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC)
        security_apply.mask_paths(
            [str(secret), str(d), str(tmp_path / "missing")],
            [str(ro), str(ro_file), str(flagged), str(tmp_path / "missing-too")],
        )
        return {
            "secret": secret.read_text(),
            "dir": os.listdir(d),
            "write_dir": _errno_of(lambda: (d / "new").write_text("z")),
            "write_ro": _errno_of(lambda: (ro / "new").write_text("z")),
            "write_ro_file": _errno_of(lambda: ro_file.write_text("z")),
            "ro_file": ro_file.read_text(),
            "flagged": os.statvfs(flagged).f_flag & 0xF,
        }

    res = _in_private_mount_ns(child)
    assert res["secret"] == "" and res["dir"] == []
    assert res["write_dir"] == res["write_ro"] == res["write_ro_file"] == "EROFS"
    assert res["ro_file"] == "y"
    assert res["flagged"] == 1 | 2 | 4 | 8  # read-only, and nosuid/nodev/noexec kept
    # Nothing reached the host.
    assert mountinfo() == before
    assert secret.read_text() == "key material" and os.listdir(d) == ["inside"]
    (ro / "new").write_text("host can write")


@ROOT_REQUIRED
def test_mask_paths_fails_loudly_without_dev_null(tmp_path):
    # In a root without /dev/null, masking must fail, not skip the path as if it were missing.
    secret = tmp_path / "secret"
    secret.write_text("key material")

    def child() -> str:
        libc.mount("tmpfs", "/dev", "tmpfs", 0, "mode=755")
        return _errno_of(lambda: security_apply.mask_paths([str(secret)], []))

    assert _in_private_mount_ns(child) == "ENOENT"


@ROOT_REQUIRED
def test_mask_paths_defaults():
    # Whichever of docker's paths this kernel has (a VM may lack /proc/kcore or /proc/sysrq-trigger).
    files = [
        p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug") if os.path.isfile(p)
    ]
    dirs = [p for p in ("/sys/firmware", "/proc/acpi", "/proc/scsi") if os.path.isdir(p)]
    ro = [p for p in ("/proc/sys/kernel/domainname", "/proc/sysrq-trigger") if os.path.exists(p)]
    assert files and dirs and ro

    def child() -> dict:
        security_apply.mask_paths()
        return {
            "files": [len(open(p, "rb").read(16)) for p in files],
            "dirs": [os.listdir(p) for p in dirs],
            "ro": [_errno_of(lambda p=p: os.close(os.open(p, os.O_WRONLY))) for p in ro],
            "status": len(open("/proc/self/status").read()) > 0,
        }

    res = _in_private_mount_ns(child)
    assert res == {
        "files": [0] * len(files),
        "dirs": [[]] * len(dirs),
        "ro": ["EROFS"] * len(ro),
        "status": True,
    }
