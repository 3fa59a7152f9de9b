import os
import sys
import tempfile

# Tests import helpers such as tests/toy_env.py by module name.
sys.path.insert(0, os.path.dirname(__file__))

# The test configuration owns the platform settings (set before any test creates the
# backend); importing library packages changes nothing.
from sweeps.platform import configure_compilation_cache, configure_cpu_runtime  # noqa: E402

configure_cpu_runtime()

# Persistent XLA compilation cache: most of the suite's time is compiling the same
# programs (env steps, learners) run after run and across xdist workers. Keyed by
# XLA on the program, jax/jaxlib version and flags, so a code change recompiles.
# JAXSG_TEST_CACHE_DIR overrides the location; JAXSG_TEST_CACHE_DIR="" turns it off.
_CACHE_DIR = os.environ.get(
    "JAXSG_TEST_CACHE_DIR", os.path.join(tempfile.gettempdir(), "jaxsg-test-xla-cache")
)
configure_compilation_cache(_CACHE_DIR)


# Per-test CPU seconds (the worker running the test and its subprocesses: setup +
# call + teardown, so a module fixture's compile is charged to its first test). Wall time
# on a shared 2-core machine says little; CPU time is what the suite costs.
# ``--cpu-durations=N`` prints the N most expensive tests; JAXSG_TEST_CPU_LOG=path
# appends one "nodeid<TAB>cpu_s<TAB>wall_s" line per test (xdist workers too).
import time  # noqa: E402

import pytest  # noqa: E402

_CPU: dict[str, list[float]] = {}


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (some tests train in
    a subprocess)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def pytest_addoption(parser):
    parser.addoption("--cpu-durations", type=int, default=0, metavar="N",
                     help="show the N tests with the most CPU seconds (0: off)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cpu0, wall0 = _cpu_seconds(), time.perf_counter()
    yield
    cpu, wall = _cpu_seconds() - cpu0, time.perf_counter() - wall0
    _CPU[item.nodeid] = [cpu, wall]
    path = os.environ.get("JAXSG_TEST_CPU_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write(f"{item.nodeid}\t{cpu:.2f}\t{wall:.2f}\n")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    n = config.getoption("--cpu-durations")
    if not n or not _CPU:
        return
    rows = sorted(_CPU.items(), key=lambda kv: -kv[1][0])[:n]
    terminalreporter.write_sep("=", f"{len(rows)} tests with the most CPU seconds")
    for nodeid, (cpu, wall) in rows:
        terminalreporter.write_line(f"{cpu:8.2f}s cpu {wall:8.2f}s wall  {nodeid}")
    total = sum(c for c, _ in _CPU.values())
    terminalreporter.write_line(f"total {total:.1f} CPU s over {len(_CPU)} tests (this process)")
