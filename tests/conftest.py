import os
import sys

# Tests import helpers such as tests/toy_env.py by module name.
sys.path.insert(0, os.path.dirname(__file__))
