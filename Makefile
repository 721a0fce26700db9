# pycontain: two commands for a fresh Debian 12 / Ubuntu machine, as root.
#   make demo   set everything up and run a container that shows its isolation
#   make test   set everything up and run the whole test suite (CI's gate)
#   make check  the contributor's loop: lint, format, types and the tests that need no root (no apt, no rootfs)
# Every package the project needs is installed here, never by hand.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= $(shell command -v /usr/bin/python3 || command -v python3)
# Debian packages: the venv and python-prctl's build (libcap headers), the default rootfs's source
# (apt-get download + dpkg-deb), mounts and network tools used by the tests.
# qemu: the cgroup v2 test guest; nftables: NAT and published ports; podman + conmon: the OCI client test;
# skopeo umoci buildah mmdebstrap debootstrap zstd: image sources and exports.
APT_PACKAGES := python3 python3-venv python3-dev gcc libcap-dev libseccomp2 dpkg apt iproute2 util-linux procps \
	qemu-system-x86 nftables podman conmon crun runc skopeo umoci buildah mmdebstrap debootstrap zstd
APT_PACKAGES += squashfs-tools  # mksquashfs/unsquashfs: the squashfs export and its test
APT_PACKAGES += docker-registry apache2-utils  # a loopback registry (htpasswd auth) for the pull/push tests
APT_PACKAGES += libc6-dev  # libc.a: the static pycontain-init (--init's PID 1) and the tests' C helpers
APT_PACKAGES += musl-tools  # musl-gcc: pycontain-init a tenth of glibc's size (exec copies it every time)
APT_PACKAGES += containerd docker.io containernetworking-plugins  # the engines tests (tests/engines)
APT_PACKAGES += hyperfine  # benchmarks/run_latency.py and its CI smoke test (tests/test_run_latency.py)
BENCH_PACKAGES := hyperfine runc crun
PYTEST_ARGS ?=

.PHONY: setup apt venv rootfs demo test lint typecheck check bench clean

setup: apt venv rootfs

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ] || ! apt-cache policy busybox-static 2>/dev/null | grep -q 'Candidate: [0-9]'; then \
	  echo "==> apt-get install $$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	@echo "==> python venv in $(VENV)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@# compat editable mode: a plain path entry, no import hook on every interpreter start.
	@$(PY) -m pip install -q -e '.[test,bench]' --config-settings editable_mode=compat
	@$(PY) -m pycontain.launcher $(VENV)/bin/pycontain  # the console script, started with -S (4-5 ms less)
	@$(PY) -m compileall -q pycontain rootfs_builder  # bytecode now: a first run must not pay for it
	@touch $@

venv: apt $(VENV)/.installed

rootfs: venv
	@$(PY) -m rootfs_builder build default
	@$(PY) -c 'from pycontain import init; init.binary_path()'  # --init's static PID 1, built once

demo: setup
	@echo "==> a container on the built-in root filesystem:"
	@$(VENV)/bin/pycontain run --rm --network none --hostname demo -v $(CURDIR)/examples:/examples:ro default -- sh /examples/isolation-demo.sh
	@echo "==> try, as root: $(VENV)/bin/pycontain run -it --rm default -- sh"

LINT_PATHS := pycontain rootfs_builder tests benchmarks examples
# ruff (lint + format) and mypy (settings and paths in pyproject.toml); .pre-commit-config.yaml runs the same.
LINT := $(PY) -m ruff check -q $(LINT_PATHS) && $(PY) -m ruff format --check -q $(LINT_PATHS) && $(PY) -m mypy

test: setup
	@$(LINT)
	@$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: venv
	@$(LINT)

typecheck: venv
	@$(PY) -m mypy

# No apt and no rootfs: only the venv. Tests that need root carry the `root` marker (tests/conftest.py).
# Bytecode, and pytest's rewritten test modules, are kept under the venv even where PYTHONDONTWRITEBYTECODE
# is set: without them every run rewrites the asserts of ~1000 tests again (~8 s of the 15 s budget on 2 cores).
check: $(VENV)/.installed
	@$(LINT)
	@PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=$(abspath $(VENV))/pycache \
		$(PY) -m pytest -q -p no:cacheprovider -m "not root and not slow" $(PYTEST_ARGS)

bench: setup
	@DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(BENCH_PACKAGES) >/dev/null
	@$(PY) benchmarks/run_latency.py --pycontain $(VENV)/bin/pycontain
	@$(VENV)/bin/pycontain bench --out bench-out  # host vs pycontain/runc/crun vs a QEMU VM: bench-out/report.md

clean:
	rm -rf $(VENV) build *.egg-info
