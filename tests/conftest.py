import os
import sys
import tempfile

# Tests import helpers such as tests/toy_env.py by module name.
sys.path.insert(0, os.path.dirname(__file__))

# The test configuration owns the platform settings (set before any test creates the
# backend); importing library packages changes nothing.
from sweeps.platform import configure_cpu_runtime  # noqa: E402

configure_cpu_runtime()

# Persistent XLA compilation cache: most of the suite's time is compiling the same
# programs (env steps, learners) run after run and across xdist workers. Keyed by
# XLA on the program, jax/jaxlib version and flags, so a code change recompiles.
# JAXSG_TEST_CACHE_DIR overrides the location; JAXSG_TEST_CACHE_DIR="" turns it off.
_CACHE_DIR = os.environ.get(
    "JAXSG_TEST_CACHE_DIR", os.path.join(tempfile.gettempdir(), "jaxsg-test-xla-cache")
)
if _CACHE_DIR:
    import jax  # noqa: E402

    jax.config.update("jax_compilation_cache_dir", _CACHE_DIR)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
