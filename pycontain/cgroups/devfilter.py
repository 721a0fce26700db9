"""Device rules on cgroup v2: a BPF_CGROUP_DEVICE program, assembled here and attached with bpf(2).

cgroup v2 has no devices.allow/deny files; the kernel asks a BPF program attached to the cgroup whether each
device open or mknod may go ahead (``struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor;}``,
``access_type = access << 16 | type``). The program is a straight list of blocks, one per rule, checked from
the last rule to the first (a later rule overrides an earlier one, as with v1's files): the first block
whose type, access, major and minor all match returns its verdict; a rule for every device and access
("a") returns at once and ends the list; past the end, access is denied. It is loaded with the GPL licence
and attached with BPF_F_ALLOW_MULTI, so programs a parent cgroup holds (systemd's) still have their say.
"""

from __future__ import annotations

import ctypes
import os
import struct

from ..errors import PycontainError
from ..libc import bpf

_BPF_PROG_LOAD, _BPF_PROG_ATTACH = 5, 8
_PROG_TYPE_CGROUP_DEVICE = 15
_ATTACH_CGROUP_DEVICE = 6
_F_ALLOW_MULTI = 2
_DEV_TYPE = {"b": 1, "c": 2}
_ACCESS = {"m": 1, "r": 2, "w": 4}

# eBPF opcodes used (linux/bpf.h)
_LDX_W = 0x61  # dst = *(u32 *)(src + off)
_MOV64_K, _MOV32_X = 0xB7, 0xBC
_AND32_K, _RSH32_K = 0x54, 0x74
_JNE_K = 0x55
_EXIT = 0x95


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def assemble(rules: list) -> bytes:  # list[devices.DeviceRule]
    """The program for ``rules`` (in the order they would be written to v1's files)."""
    # r2 = type, r3 = access, r4 = major, r5 = minor (r1 = the context)
    prog = [
        _insn(_LDX_W, 2, 1, 0),
        _insn(_AND32_K, 2, imm=0xFFFF),
        _insn(_LDX_W, 3, 1, 0),
        _insn(_RSH32_K, 3, imm=16),
        _insn(_LDX_W, 4, 1, 4),
        _insn(_LDX_W, 5, 1, 8),
    ]
    for rule in reversed(rules):
        verdict = [_insn(_MOV64_K, 0, imm=1 if rule.allow else 0), _insn(_EXIT)]
        everything = rule.type == "a" and rule.major < 0 and rule.minor < 0 and set(rule.access) == set("rwm")
        if everything:
            prog += verdict
            break
        checks: list[tuple[str, int]] = []
        if rule.type != "a":
            checks.append(("type", _DEV_TYPE[rule.type]))
        mask = sum(_ACCESS[c] for c in rule.access)
        if mask != 7:
            checks.append(("access", ~mask & 7))
        if rule.major >= 0:
            checks.append(("major", rule.major))
        if rule.minor >= 0:
            checks.append(("minor", rule.minor))
        block: list[list[bytes]] = []
        for what, value in checks:
            if what == "access":  # any access bit outside the rule's: not this rule
                block.append([_insn(_MOV32_X, 1, 3), _insn(_AND32_K, 1, imm=value), None])  # type: ignore[list-item]
            else:
                block.append([None, {"type": 2, "major": 4, "minor": 5}[what], value])  # type: ignore[list-item]
        # Each check jumps past the rest of the block (its later checks and the verdict) when it fails.
        sizes = [2 + 1 if b[0] is not None else 1 for b in block]
        for i, b in enumerate(block):
            skip = sum(sizes[i + 1 :]) + len(verdict)
            if b[0] is not None:
                prog += [b[0], b[1], _insn(_JNE_K, 1, off=skip, imm=0)]
            else:
                prog.append(_insn(_JNE_K, b[1], off=skip, imm=b[2]))
        prog += verdict
    else:
        prog += [_insn(_MOV64_K, 0, imm=0), _insn(_EXIT)]
    return b"".join(prog)


def attach(cgroup_dir: str, rules: list) -> None:
    """Load the program for ``rules`` and attach it to the v2 cgroup at ``cgroup_dir``."""
    code = assemble(rules)
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(1 << 16)
    attr = bytearray(128)
    struct.pack_into(
        "<IIQQIIQ",
        attr,
        0,
        _PROG_TYPE_CGROUP_DEVICE,
        len(code) // 8,
        ctypes.addressof(insns),
        ctypes.addressof(license_),
        1,
        len(log),
        ctypes.addressof(log),
    )
    struct.pack_into("<I", attr, 68, _ATTACH_CGROUP_DEVICE)  # expected_attach_type
    try:
        prog = bpf(_BPF_PROG_LOAD, bytes(attr))
    except OSError as e:
        detail = log.value.decode(errors="replace").strip().splitlines()[-1:] or [str(e.strerror)]
        raise PycontainError(f"cannot load the cgroup device program: {e.strerror} ({detail[0]})") from None
    try:
        fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            bpf(
                _BPF_PROG_ATTACH,
                struct.pack("<IIII", fd, prog, _ATTACH_CGROUP_DEVICE, _F_ALLOW_MULTI) + bytes(112),
            )
        except OSError as e:
            raise PycontainError(
                f"cannot attach the device program to cgroup {cgroup_dir}: {e.strerror}"
            ) from None
        finally:
            os.close(fd)
    finally:
        os.close(prog)  # the attachment holds the program from now on
