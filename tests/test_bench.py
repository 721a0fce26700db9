"""``pycontain bench`` end to end, short: every output file, and figures that must hold on any machine.

Tiny counts (3 rounds, density N <= 3, small workloads) keep it near a minute on two cores; the VM runs under
TCG (this host's KVM cannot boot a guest, which the bench itself probes and reports). The assertions are
about what OS-level virtualization is, not about this machine's speed: a container's CPU-bound loop runs at
the host's speed (within 15 %), a VM takes longer to start than a container, and an idle container costs far
less host memory than an idle VM.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

pytestmark = [pytest.mark.vm, pytest.mark.timeout(900)]

PYCONTAIN = os.path.join(os.path.dirname(sys.executable), "pycontain")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _leftovers() -> dict[str, object]:
    with open("/proc/self/mountinfo") as f:
        mounts = sorted(line.split()[4] for line in f if "bench" in line or "pycontain-vm" in line)
    tmp = "/var/lib/pycontain/tmp"
    return {
        "mounts": mounts,
        "work": sorted(os.listdir(tmp)) if os.path.isdir(tmp) else [],
        "vm_initrds": sorted(
            p for p in os.listdir(tempfile.gettempdir()) if p.startswith("pycontain-vm-initrd")
        ),
    }


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    before = _leftovers()
    runtimes = ",".join(["pycontain"] + [r for r in ("runc", "crun") if shutil.which(r)])
    p = subprocess.run(
        [
            PYCONTAIN,
            "bench",
            "--repeat",
            "3",
            "--scale",
            "0.2",
            "--density",
            "1,3",
            "--vm-density-max",
            "1",
            "--vm",
            "auto",
            "--runtimes",
            runtimes,
            "--out",
            str(out),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    summary = json.loads(p.stdout)
    yield out, summary, before


def _median(summary: dict, metric: str, target: str) -> float:
    rows = [s for s in summary["summary"] if s["metric"] == metric and s["target"] == target]
    assert rows, f"no {metric} figure for {target}"
    return rows[0]["median"]


def test_every_output_file(bench) -> None:
    out, summary, _ = bench
    for name in ("bench.json", "report.md", "latency.png", "throughput.png", "memory.png", "start_rate.png"):
        assert (out / name).is_file(), name
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == PNG_MAGIC, png
    raw = json.loads((out / "bench.json").read_text())
    assert raw["samples"] and all(s["load1"] >= 0 for s in raw["samples"])
    for s in raw["summary"]:
        assert s["n"] >= 1 and s["min"] <= s["median"] <= s["max"]
    report = (out / "report.md").read_text()
    assert "| metric |" in report and "Where the overhead comes from" in report
    assert summary["meta"]["vm_accel"] in ("tcg", "kvm") and summary["meta"]["vm_accel_why"]
    assert "vm (" + summary["meta"]["vm_accel"] + ")" in report  # every VM figure says which accelerator


def test_samples_are_interleaved_and_repeated(bench) -> None:
    out, _, _ = bench
    raw = json.loads((out / "bench.json").read_text())
    cpu = [s for s in raw["samples"] if s["metric"] == "cpu"]
    targets = {s["target"] for s in cpu}
    assert {"host", "pycontain", "vm"} <= targets
    assert all(sum(1 for s in cpu if s["target"] == t) == 3 for t in targets)
    # round r starts with target r: the order rotates
    first = [
        next(s["target"] for s in raw["samples"] if s["round"] == r and s["metric"] == "noop")
        for r in range(3)
    ]
    assert len(set(first)) == 3


def test_every_target_has_a_cpu_figure(bench) -> None:
    # Timing ratios are the report's business, not a test's: a busy CI machine moved runc to 1.44x the host once.
    _, summary, _ = bench
    for target in {s["target"] for s in summary["summary"] if s["metric"] == "cpu"}:
        assert _median(summary, "cpu", target) > 0, target


def test_vm_starts_slower_and_costs_more_memory(bench) -> None:
    _, summary, _ = bench
    assert _median(summary, "noop", "vm") > _median(summary, "noop", "pycontain")
    assert _median(summary, "ready", "vm") > _median(summary, "ready", "pycontain")
    vm_mem = _median(summary, "mem@1", "vm")
    ct_mem = _median(summary, "mem@1", "pycontain")
    assert vm_mem > 20 * ct_mem, (vm_mem, ct_mem)
    assert _median(summary, "mem@3", "pycontain") < vm_mem


def test_nothing_left_behind(bench) -> None:
    _, _, before = bench
    assert _leftovers() == before


def test_bad_options_are_one_line_errors() -> None:
    for args, needle in (
        (["--repeat", "0"], "--repeat"),
        (["--vm", "xen"], "--vm"),
        (["--workloads", "cpu,gpu"], "'gpu'"),
        (["--density", "1,x"], "--density"),
        (["--runtimes", "docker"], "'docker'"),
        (["--appliance", "no-such-image"], "no-such-image"),
    ):
        p = subprocess.run(
            [PYCONTAIN, "bench", "--vm", "none", *args, "--out", "/nonexistent/never"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 125, (args, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in p.stderr, (args, p.stderr)


def test_time_until_a_service_answers(tmp_path, monkeypatch) -> None:
    """ "answer": an HTTP server appliance published on 127.0.0.1, timed until it replies, in a container
    (bridge network, DNAT) and in its VM (QEMU's user-mode network), the same way."""
    import rootfs_builder
    from pycontain.bench import BenchOptions, run_bench
    from pycontain.vm.kernel import cache_dir
    from rootfs_builder.sources import import_source

    data = str(tmp_path / "data")
    monkeypatch.setenv("PYCONTAIN_VM_CACHE", cache_dir())  # the kernel already fetched, not a new download
    monkeypatch.setenv("PYCONTAIN_DATA", data)
    www = tmp_path / "tree"
    shutil.copytree(rootfs_builder.resolve("default", "/var/lib/pycontain"), www, symlinks=True)
    (www / "www").mkdir()
    (www / "www" / "index.html").write_text("<html>up</html>\n")
    import_source(
        str(www),
        "web:1",
        data,
        progress=False,
        config={"Entrypoint": ["httpd", "-f", "-p", "8080", "-h", "/www"], "ExposedPorts": {"8080/tcp": {}}},
    )
    result = run_bench(
        BenchOptions(
            appliance="web:1",
            runtimes=("pycontain",),
            vm="tcg",
            repeat=1,
            warmup=0,
            workloads=("noop", "answer"),
        )
    )
    # the no-op is the bench's own command: the server's entrypoint does not swallow it
    assert {s.target for s in result.samples if s.metric == "noop"} == {"host", "pycontain", "vm"}
    answered = {s.target for s in result.samples if s.metric == "answer"}
    assert answered == {"pycontain", "vm"}, result.notes
    assert all(s.value > 0 and s.unit == "ms" for s in result.samples if s.metric == "answer")
