"""Learning agents and baselines over the jaxsg env API (Flax networks, heuristics,
MADFRL, MAPPO, MAML, federated aggregation). Nothing in ``jaxsg`` imports this package.
"""
