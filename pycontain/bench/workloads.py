"""The workloads ``pycontain bench`` runs everywhere: busybox sh scripts, timed from inside.

Each script times itself with ``adjtimex`` (microseconds, a read-only query every runtime's seccomp profile
allows) and prints ``PYCONTAIN-BENCH <name> <t0> <t1> <units>`` lines; the rate is units / (t1 - t0). Timing
inside keeps a VM's boot and a runtime's start out of the throughput figures: those have their own metrics
(``noop``, ``ready``). The same busybox binary runs them on the bare host (from the appliance's root
filesystem, ``$ROOT`` set to it) and in every guest (``$ROOT`` empty).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARK = "PYCONTAIN-BENCH"
READY_MARK = "PYCONTAIN-BENCH-UP"

PRELUDE = r"""now() { adjtimex | awk '/tv_sec/{s=$2} /tv_usec/{u=$2} END{printf "%d.%06d\n", s, u}'; }
mark() { echo "PYCONTAIN-BENCH $1 $2 $3 $4"; }
: "${WORK:=/var/tmp/pycontain-bench}"
mkdir -p "$WORK" && cd "$WORK" || exit 97
"""


@dataclass(frozen=True)
class Workload:
    name: str
    unit: str  # what the figure counts, per second
    per_unit: float  # the work units one "unit" of the figure stands for (1e3 for "k.../s")
    base: int  # the amount of work at --scale 1 (about a second on a current x86 core)
    body: str  # sh; {n} is the amount, {port} a free loopback port

    def script(self, scale: float, port: int = 0) -> str:
        return self.body.format(n=max(1, int(self.base * scale)), port=port)


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "cpu",
            "k iterations/s",
            1e3,
            400_000,
            "i=0; t0=$(now); while [ $i -lt {n} ]; do i=$((i+1)); done; t1=$(now); mark cpu $t0 $t1 {n}\n",
        ),
        Workload(
            "syscall",
            "k syscalls/s",
            1e3,
            600_000,
            "t0=$(now); dd if=/dev/zero of=/dev/null bs=1 count={n} 2>/dev/null; t1=$(now)\n"
            "mark syscall $t0 $t1 $(({n}*2))\n",
        ),
        Workload(
            "forkexec",
            "execs/s",
            1,
            2_000,
            "i=0; t0=$(now); while [ $i -lt {n} ]; do $ROOT/bin/true; i=$((i+1)); done; t1=$(now)\n"
            "mark forkexec $t0 $t1 {n}\n",
        ),
        Workload(
            "fileio",
            "MiB/s",
            1,
            256,
            # sync first: the timed fsync then flushes this file alone, not what the runtime or the
            # previous workload left dirty (ext4's journal commit in data=ordered writes those too).
            "f=bench.$$; sync; t0=$(now); dd if=/dev/zero of=$f bs=1048576 count={n} conv=fsync 2>/dev/null\n"
            "t1=$(now); mark fileio $t0 $t1 {n}; rm -f $f; sync\n",
        ),
        Workload(
            "net",
            "MiB/s",
            1,
            128,
            # the listener's stdin is a FIFO held open by fd 3: busybox nc quits at EOF on stdin
            "rm -f fifo; mkfifo fifo; nc -l -p {port} < fifo > /dev/null & exec 3> fifo; sleep 0.2; i=0\n"
            "t0=$(now); until dd if=/dev/zero bs=65536 count=$(({n}*16)) 2>/dev/null | nc 127.0.0.1 {port}; do\n"
            "  i=$((i+1)); [ $i -lt 300 ] || exit 98; usleep 20000; done\n"
            "exec 3>&-; wait; t1=$(now); rm -f fifo; mark net $t0 $t1 {n}\n",
        ),
    )
}

RATE_METRICS = tuple(WORKLOADS)
SERIES_METRICS = ("noop", "ready", "answer")  # seconds, measured from outside
ALL_METRICS = SERIES_METRICS + RATE_METRICS + ("density",)


def combined_script(names: list[str], scale: float, port: int) -> str:
    """One script running several workloads (a VM runs them all in one boot)."""
    return PRELUDE + "".join(
        f"( {WORKLOADS[n].script(scale, port + i)}) || echo 'PYCONTAIN-BENCH-FAILED {n}'\n"
        for i, n in enumerate(names)
    )


def parse(output: str) -> dict[str, float]:
    """{workload: rate in its figure's unit} from a script's output."""
    rates: dict[str, float] = {}
    for name, t0, t1, units in re.findall(rf"^{MARK} (\w+) ([0-9.]+) ([0-9.]+) ([0-9.]+)\s*$", output, re.M):
        seconds = float(t1) - float(t0)
        if seconds > 0 and name in WORKLOADS:
            rates[name] = float(units) / WORKLOADS[name].per_unit / seconds
    return rates
