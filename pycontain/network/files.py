"""A container's /etc/hosts, /etc/resolv.conf and /etc/hostname, kept in its state directory.

The runtime bind-mounts them into the container, so they are rewritten *in place* (same inode: a
rename would leave the container's mount on the old file) when members of a network come and go.
"""

from __future__ import annotations

import os

from . import settings

# ipaddress costs ~2 ms to import and _socket ~0.4, and every container on a network (a warm pool's claim
# included) writes these files: IPv4 addresses, which the registry holds canonical, are parsed here, and
# _socket's inet_pton is loaded for an IPv6 nameserver only.

HOSTS_HEADER = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
NAMES = ("hosts", "resolv.conf", "hostname")


def _names(member: dict) -> list[str]:
    out: list[str] = []
    for n in (member.get("hostname"), member.get("container_name")):
        if n and n not in out:
            out.append(n)
    return out


def hosts(own: dict, members: list[dict]) -> str:
    """The container's own names first, then every other member's, ordered by address."""
    lines = [HOSTS_HEADER]
    lines.append(f"{own['ip']}\t{' '.join(_names(own))}\n")
    for entry in own.get("extra_hosts") or []:  # --add-host NAME:IP
        name, _, ip = entry.partition(":")
        lines.append(f"{ip}\t{name}\n")
    others = sorted(
        (m for m in members if m["container_id"] != own["container_id"]),
        key=lambda m: tuple(map(int, m["ip"].split("."))),  # dotted quads sorted as numbers
    )
    for m in others:
        names = _names(m)
        if names:
            lines.append(f"{m['ip']}\t{' '.join(names)}\n")
    return "".join(lines)


_LOOPBACK6 = bytes(15) + b"\x01"  # ::1


def _octet(q: str) -> bool:
    """A dotted quad's part as inet_pton takes it: 0-255, in ASCII digits, without a leading zero."""
    return q.isascii() and q.isdecimal() and (q == "0" or not q.startswith("0")) and int(q) <= 255


def _is_loopback(addr: str) -> bool:
    """127.0.0.0/8 or ::1 (what ipaddress calls loopback); not an address: False."""
    host = addr.split("%")[0]
    quad = host.split(".")
    if len(quad) == 4 and all(_octet(q) for q in quad):
        return quad[0] == "127"
    if ":" not in host:
        return False
    from _socket import AF_INET6, inet_pton

    try:
        return inet_pton(AF_INET6, host) == _LOOPBACK6
    except OSError:
        return False


def resolv_conf(source: str = "/etc/resolv.conf", dns=None, search=None) -> str:
    """The host's resolver configuration without loopback nameservers (which would be the container's own
    lo). Behind systemd-resolved's stub (127.0.0.53), its list of real upstream servers is used instead.
    ``dns`` (--dns) replaces its nameservers, ``search`` (--dns-search) its search domains."""
    text = _host_resolv_conf(source)
    if not dns and not search:
        return text
    kept = [
        ln
        for ln in text.splitlines()
        if not (dns and ln.split()[:1] == ["nameserver"])
        and not (search and ln.split()[:1] in (["search"], ["domain"]))
    ]
    if search:
        kept.insert(0, "search " + " ".join(search))
    kept.extend(f"nameserver {s}" for s in dns or [])
    return "\n".join(kept) + "\n"


def _host_resolv_conf(source: str) -> str:
    def read(path: str) -> list[str]:
        try:
            with open(path) as f:
                return f.read().splitlines()
        except OSError:
            return []

    lines = read(source)
    servers = [ln.split()[1] for ln in lines if ln.split()[:1] == ["nameserver"] and len(ln.split()) > 1]
    if servers and all(_is_loopback(s) for s in servers):
        upstream = read("/run/systemd/resolve/resolv.conf")
        if any(ln.split()[:1] == ["nameserver"] for ln in upstream):
            lines = upstream
    kept = []
    for ln in lines:
        words = ln.split()
        if words[:1] == ["nameserver"] and len(words) > 1 and _is_loopback(words[1]):
            continue
        kept.append(ln)
    return "\n".join(kept).strip("\n") + "\n" if kept else ""


def write_in_place(path: str, data: str) -> None:
    """Write ``data`` over the file at ``path`` keeping its inode (created if missing); readers never see
    it empty: the new bytes go first, the tail is cut after."""
    raw = data.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.pwrite(fd, raw, 0)
        os.ftruncate(fd, len(raw))
    finally:
        os.close(fd)


def refresh_hosts(net: dict) -> None:
    """Rewrite the hosts file of every member of ``net`` whose files exist (under the registry lock)."""
    members = list(net["members"].values())
    for m in members:
        path = os.path.join(settings.files_dir(m["state_root"], m["container_id"]), "hosts")
        if os.path.exists(path):
            try:
                write_in_place(path, hosts(m, members))
            except OSError:
                pass  # a container being removed right now


def remove(directory: str) -> None:
    for n in NAMES:
        try:
            os.unlink(os.path.join(directory, n))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(directory)
    except OSError:
        pass
