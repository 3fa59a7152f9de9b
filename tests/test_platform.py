"""Entry points own the platform settings; importing library packages changes none."""

import os
import subprocess
import sys

from sweeps.platform import CPU_XLA_FLAGS, configure_cpu_runtime


def _env_without_flags():
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAXSG_CPU_DEFAULTS")}
    return env


def test_importing_libraries_sets_no_xla_flags():
    code = ("import os, agents, agents.madfrl, jaxsg, sweeps.experiments; "
            "print(repr(os.environ.get('XLA_FLAGS')))")
    out = subprocess.run([sys.executable, "-c", code], env=_env_without_flags(),
                         capture_output=True, text=True, check=True, cwd=os.getcwd())
    assert out.stdout.strip() == "None"


def test_configure_cpu_runtime_adds_flags_once_and_keeps_user_values(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=true --foo=1")
    monkeypatch.delenv("JAXSG_CPU_DEFAULTS", raising=False)
    assert configure_cpu_runtime()
    assert configure_cpu_runtime()
    flags = os.environ["XLA_FLAGS"].split()
    assert "--xla_cpu_multi_thread_eigen=true" in flags  # the user's value wins
    assert "--xla_cpu_multi_thread_eigen=false" not in flags
    assert flags.count(CPU_XLA_FLAGS[0]) == 1
    assert "--foo=1" in flags


def test_configure_cpu_runtime_respects_opt_out(monkeypatch):
    monkeypatch.setenv("JAXSG_CPU_DEFAULTS", "1")
    monkeypatch.setenv("XLA_FLAGS", "")
    assert not configure_cpu_runtime()
    assert os.environ["XLA_FLAGS"] == ""
