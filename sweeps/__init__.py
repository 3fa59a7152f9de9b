"""Sweeps compose scenarios and agents: the grid runner, experiments, benchmarks.

Importing ``agents`` first applies its CPU XLA flags (a jaxlib 0.10 freeze
workaround, see ``agents/__init__.py``) before any sweep creates the backend,
whichever ``python -m sweeps.<module>`` is the entry point.
"""

import agents  # noqa: F401
