"""A stand-in for a container's process, run as ``python nshelper.py NETNS [--hosts FILE] [--cpu N] COMMAND ...``.

It joins the network namespace held at NETNS (and, with --hosts, a private mount namespace where FILE
is bind-mounted on /etc/hosts, as the runtime does), pins itself to CPU N with --cpu N, then:

  serve PORT TAG        accept TCP connections on PORT; answer each with TAG and close (prints "ready")
  connect HOST PORT     connect (HOST: address or name, resolved by the C library), print the answer
  links                 print the namespace's interfaces, addresses and routes as JSON
  sink PORT             accept one connection, read until EOF, print the byte count (benchmarks)
  blast HOST PORT SECS  send zeros for SECS seconds, print the byte count

Exit status 0 on success, 1 on a failed connection (its error on stdout).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from pycontain import libc

CHUNK = 1 << 20


def enter(netns: str, hosts: str | None) -> None:
    if hosts:
        libc.unshare(libc.CLONE_NEWNS)
        libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
        libc.mount(hosts, "/etc/hosts", None, libc.MS_BIND)
    if netns != "-":
        fd = os.open(netns, os.O_RDONLY)
        libc.setns(fd, libc.CLONE_NEWNET)
        os.close(fd)


def main(argv: list[str]) -> int:
    netns, rest = argv[0], argv[1:]
    hosts = None
    if rest[:1] == ["--hosts"]:
        hosts, rest = rest[1], rest[2:]
    if rest[:1] == ["--cpu"]:
        os.sched_setaffinity(0, {int(rest[1])})
        rest = rest[2:]
    enter(netns, hosts)
    cmd = rest[0]
    if cmd == "serve":
        port, tag = int(rest[1]), rest[2]
        srv = socket.create_server(("0.0.0.0", port), reuse_port=False)
        print("ready", flush=True)
        while True:
            conn, _ = srv.accept()
            with conn:
                conn.sendall(tag.encode())
    if cmd == "connect":
        host, port = rest[1], int(rest[2])
        timeout = float(rest[3]) if len(rest) > 3 else 3.0
        try:
            with socket.create_connection((host, port), timeout=timeout) as s:
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
            print(data.decode())
            return 0
        except OSError as e:
            print(f"error: {e}")
            return 1
    if cmd == "links":
        import subprocess

        out = {"ifaces": sorted(name for _, name in socket.if_nameindex())}
        for what in ("addr", "route"):
            p = subprocess.run(["ip", "-j", what], capture_output=True, text=True)
            out[what] = json.loads(p.stdout or "[]")
        print(json.dumps(out))
        return 0
    if cmd == "sink":
        srv = socket.create_server(("0.0.0.0", int(rest[1])))
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        print("ready", flush=True)
        conn, _ = srv.accept()
        total = 0
        buf = bytearray(CHUNK)
        with conn:
            while n := conn.recv_into(buf):
                total += n
        print(total, flush=True)
        return 0
    if cmd == "blast":
        host, port, secs = rest[1], int(rest[2]), float(rest[3])
        data = bytes(CHUNK)
        total = 0
        with socket.create_connection((host, port), timeout=10) as s:
            deadline = time.monotonic() + secs
            while time.monotonic() < deadline:
                s.sendall(data)
                total += CHUNK
        print(total, flush=True)
        return 0
    print(f"unknown command {cmd!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
