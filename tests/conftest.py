import os
import sys

# Tests import helpers such as tests/toy_env.py by module name.
sys.path.insert(0, os.path.dirname(__file__))

# The test configuration owns the platform settings (set before any test creates the
# backend); importing library packages changes nothing.
from sweeps.platform import configure_cpu_runtime  # noqa: E402

configure_cpu_runtime()
