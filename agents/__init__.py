"""Learning agents and baselines over the jaxsg env API (Flax networks, heuristics,
MADFRL, MAPPO, MAML, federated aggregation). Nothing in ``jaxsg`` imports this package.
"""

import os

# Workaround for a CPU runtime freeze in jaxlib 0.10.x: vmapped training programs
# sometimes never finish — `block_until_ready` waits while every XLA thread sits idle
# (gdb). Measured here: the MAPPO test setup froze in 5/5 runs without the flag below
# and passed 6/6 with it; MADFRL froze in about half of its runs. The trigger is XLA's
# concurrency-optimised CPU scheduler; single-threaded Eigen and synchronous dispatch
# (also reported for the same symptom in PyAutoLabs/PyAutoFit#1530) did not suffice
# alone, and are kept because our small matmuls gain nothing from the Eigen pool. XLA
# reads XLA_FLAGS when it creates the CPU backend, so importing ``agents`` before the
# first computation is what makes this work. Affects CPU devices only. Set
# JAXSG_CPU_DEFAULTS=1 to keep JAX's defaults.
# The flags did not cover everything on jaxlib 0.10.2: a MADFRL training probe at the
# sgin defaults (48 followers, scratch script in the session-3 note) still froze in 4
# of 5 runs, and in 3 of 3 with XNNPACK off as well. gdb showed every worker of XLA's
# thread pool parked in Eigen's WaitForWork and the caller in tsl::BlockUntilReady: a
# lost task or wake-up in the CPU runtime. On jaxlib 0.9.2 the same probe finished 6
# of 6 times, so pyproject.toml pins jax and jaxlib below 0.10 (the flags stay).
CPU_XLA_FLAGS = (
    "--xla_cpu_enable_concurrency_optimized_scheduler=false",
    "--xla_cpu_multi_thread_eigen=false",
)

if os.environ.get("JAXSG_CPU_DEFAULTS", "0") != "1":
    _flags = os.environ.get("XLA_FLAGS", "")
    for _flag in CPU_XLA_FLAGS:
        if _flag.split("=")[0] not in _flags:
            _flags = f"{_flags} {_flag}".strip()
    os.environ["XLA_FLAGS"] = _flags
    import jax

    jax.config.update("jax_cpu_enable_async_dispatch", False)
