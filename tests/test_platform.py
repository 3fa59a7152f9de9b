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


def test_configure_compilation_cache_writes_there_keeps_a_configured_one(tmp_path):
    code = (
        "import sys, jax, jax.numpy as jnp\n"
        "from sweeps.platform import configure_compilation_cache as c\n"
        "assert c('') is None and not jax.config.jax_compilation_cache_dir\n"
        "assert c(sys.argv[1]) == sys.argv[1]\n"
        "assert c(sys.argv[2]) == sys.argv[1]  # a configured cache is kept\n"
        "jax.jit(lambda x: jnp.sin(x) * 3)(jnp.ones(3)).block_until_ready()\n"
    )
    first, second = tmp_path / "first", tmp_path / "second"
    env = {k: v for k, v in _env_without_flags().items() if k != "JAX_COMPILATION_CACHE_DIR"}
    subprocess.run([sys.executable, "-c", code, str(first), str(second)], env=env,
                   check=True, cwd=os.getcwd())
    assert any(first.iterdir()) and not second.exists()
