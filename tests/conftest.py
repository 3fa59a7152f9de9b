import os
import sys

# Tests import helpers such as tests/toy_env.py by module name.
sys.path.insert(0, os.path.dirname(__file__))

# Configure the CPU runtime before any test creates the backend (see agents/__init__.py).
import agents  # noqa: E402, F401
