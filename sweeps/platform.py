"""Platform settings owned by the entry points (``sweeps.grid``, ``sweeps.bench``,
the test configuration) — never applied as a side effect of importing a library
package.

:func:`configure_cpu_runtime` sets two XLA CPU flags and synchronous dispatch.
Why: on jaxlib 0.10.x vmapped training programs sometimes never finished
(``block_until_ready`` waiting while every XLA thread sat idle in Eigen's
``WaitForWork``, seen under gdb). The MAPPO test setup froze in 5/5 runs without
the flags and passed 6/6 with them; a 48-follower MADFRL probe still froze in 4
of 5 runs on jaxlib 0.10.2 with them, which is why ``pyproject.toml`` pins jax
below 0.10 (0.9.2 finished the same probe 6 of 6 times). Single-threaded Eigen
costs nothing measurable for our small matmuls. XLA reads ``XLA_FLAGS`` when it
creates the CPU backend, so call this before the first computation. Set
``JAXSG_CPU_DEFAULTS=1`` to keep JAX's defaults.

:func:`configure_compilation_cache` turns on JAX's persistent compilation cache. Why:
a grid rebuilds the same programs (env steps, rollouts, references) cell after cell as
new closures, which the in-memory jit cache does not share; the on-disk cache, keyed
by XLA on the program, the jax/jaxlib versions and the flags, does. It changes no
number: a hit loads the executable the compiler would have built.
"""

from __future__ import annotations

import os

CPU_XLA_FLAGS = (
    "--xla_cpu_enable_concurrency_optimized_scheduler=false",
    "--xla_cpu_multi_thread_eigen=false",
)


def configure_cpu_runtime() -> bool:
    """Add :data:`CPU_XLA_FLAGS` to ``XLA_FLAGS`` and turn off async CPU dispatch.

    Returns whether anything was configured (``False`` when ``JAXSG_CPU_DEFAULTS=1``).
    Idempotent; flags the user already set keep the user's value.
    """
    if os.environ.get("JAXSG_CPU_DEFAULTS", "0") == "1":
        return False
    flags = os.environ.get("XLA_FLAGS", "")
    for flag in CPU_XLA_FLAGS:
        if flag.split("=")[0] not in flags:
            flags = f"{flags} {flag}".strip()
    os.environ["XLA_FLAGS"] = flags
    import jax

    jax.config.update("jax_cpu_enable_async_dispatch", False)
    return True


def configure_compilation_cache(path) -> str | None:
    """Turn on JAX's persistent compilation cache at ``path`` (every program, however
    fast it compiled) unless a cache directory is configured already (the test
    configuration's, or ``JAX_COMPILATION_CACHE_DIR``); ``path`` None or "" does nothing.
    Returns the directory in use (None: no cache)."""
    import jax

    current = jax.config.jax_compilation_cache_dir
    if current or not path:
        return current or None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return str(path)
