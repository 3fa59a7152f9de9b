"""Sweeps compose scenarios and agents: the grid runner, experiments, benchmarks.

Importing this package changes no platform setting: the entry points
(``python -m sweeps.grid``, ``python -m sweeps.bench``) call
:func:`sweeps.platform.configure_cpu_runtime` themselves.
"""
