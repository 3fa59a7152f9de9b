"""Federated training of learners: the server step and its period.

The aggregation rules themselves (:func:`~jaxsg.federated.weighted_average`, the
hierarchical and robust rules) live in :mod:`jaxsg.federated`, shared with the
``edge_assoc`` FL workload; this module composes them for training loops:

* :func:`fl_update` — the SGIN paper's server step (Sec. IV-C, eq. 34-35); its
  client weights (eq. 36) come from the scenario adapter's
  ``federated_weights`` (``agents.adapters``).
* :class:`FederatedConfig` + :func:`aggregate` / :func:`maybe_aggregate` —
  the rule and period as a small frozen config, for training loops;
  :func:`broadcast` issues the global model to every client.

SGIN decisions (record)
-----------------------
1. **Sign of eq. 34.** The paper writes I_{n,m} = Z − Z_{n,m} and
   Z(t+1) = Z(t) + u·I(t), which moves the global model *away* from the
   clients. We use the evident intent, I_{n,m} = Z_{n,m} − Z, so
   ``Z ← Z + u·Σ w_{n,m}(Z_{n,m} − Z)``; with u = 1 this is exactly the
   weighted average of the client models.
2. **Weights of eq. 36.** The paper's weight (|D_{n,m}| + |L_{n,m}|) /
   (|D_total| + |L_total|) adds task bits to kilometres, so the result
   depends on the unit chosen for distance (bits ≈ 10^7 would swamp metres).
   We normalise each to a fraction of its own total and average them 50/50:
   w = ½·D/ΣD + ½·L/ΣL. It is unit-free, sums to 1, and keeps the paper's
   monotonicity (more task bits or a longer LEO distance → more weight).
3. **Critics stay local.** Only the actor pytree is passed in; the caller
   never aggregates critic parameters. After aggregation the global actor is
   issued to every follower with :func:`broadcast`.
4. **Server step size u for every rule.** All rules are applied as
   Z ← Z + u·(agg(Z_clients) − Z) (u = 1: replace by the aggregate).
   "fedavg" weights clients by the given weights (data size in McMahan et
   al.; the scenario adapter's ``federated_weights``; uniform if none given);
   "median" and "trimmed_mean" are unweighted.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from jaxsg.federated import (
    cast_like,
    coordinate_median,
    num_clients,
    trimmed_mean,
    weighted_average,
)

PyTree = Any

RULES = ("fedavg", "median", "trimmed_mean")


# --------------------------------------------------------------------------
# server step (SGIN eq. 34-35)
# --------------------------------------------------------------------------


def fl_update(
    global_params: PyTree, stacked: PyTree, weights: jnp.ndarray, step_size_u: float = 1.0
) -> PyTree:
    """Eq. 34-35: Z ← Z + u·Σ_c w_c (Z_c − Z), weights normalised to sum to 1.

    With u = 1 this is :func:`weighted_average`; u < 1 is a damped server step.
    """
    avg = weighted_average(stacked, weights)
    return _server_step(global_params, avg, step_size_u)


def _server_step(global_params: PyTree, target: PyTree, u) -> PyTree:
    return jax.tree.map(
        lambda z, a: cast_like(z + u * (a - z), z), global_params, target
    )


def broadcast(global_params: PyTree, num_clients: int) -> PyTree:
    """Issue the global model to every client: leaves (…) → (num_clients, …)."""
    return jax.tree.map(
        lambda z: jnp.broadcast_to(jnp.asarray(z), (num_clients,) + jnp.shape(z)), global_params
    )


# --------------------------------------------------------------------------
# config and dispatch
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FederatedConfig:
    """Aggregation rule, period (in local updates) and server step size u.

    ``rule`` ∈ {"fedavg", "median", "trimmed_mean"}; ``trim_fraction``
    is used by "trimmed_mean" only. Frozen and hashable, so it can be a static
    argument of a jitted function.
    """

    rule: str = "fedavg"
    period: int = 10
    step_size: float = 1.0
    trim_fraction: float = 0.1

    def __post_init__(self):
        _check_rule(self.rule)
        if not isinstance(self.period, int) or self.period < 1:
            raise ValueError(f"period must be an integer >= 1; got {self.period!r}")
        if not (0.0 < float(self.step_size) < float("inf")):
            raise ValueError(f"step_size must be a finite number > 0; got {self.step_size!r}")
        if not (0.0 <= float(self.trim_fraction) < 0.5):
            raise ValueError(f"trim_fraction must be in [0, 0.5); got {self.trim_fraction!r}")


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown aggregation rule {rule!r}; allowed values: {RULES}")


def aggregate(
    config: FederatedConfig,
    global_params: PyTree,
    stacked: PyTree,
    weights: jnp.ndarray | None = None,
) -> PyTree:
    """New global model Z ← Z + u·(agg(stacked) − Z) under ``config.rule``.

    * "fedavg": weighted by ``weights`` (C,) (uniform if None);
    * "median": :func:`coordinate_median`;
    * "trimmed_mean": :func:`trimmed_mean` with ``config.trim_fraction``.

    Issue the result to the clients with :func:`broadcast`.
    """
    _check_rule(config.rule)
    c = num_clients(stacked)
    if config.rule == "fedavg":
        target = weighted_average(stacked, jnp.ones((c,)) if weights is None else weights)
    elif config.rule == "median":
        target = coordinate_median(stacked)
    else:
        target = trimmed_mean(stacked, config.trim_fraction)
    return _server_step(global_params, target, config.step_size)


def maybe_aggregate(
    config: FederatedConfig,
    step: jnp.ndarray,
    global_params: PyTree,
    stacked: PyTree,
    weights: jnp.ndarray | None = None,
) -> tuple[PyTree, PyTree]:
    """Aggregate and issue every ``config.period`` local updates, else pass through.

    ``step`` (traced int) counts local updates from 0; aggregation happens
    when ``(step + 1) % period == 0``. Returns ``(global_params, stacked)``:
    on an aggregation step the new global model and its broadcast to every
    client, otherwise the inputs unchanged. Both branches are computed and
    selected with ``jnp.where`` (cheap for actor-sized models, vmap-friendly).
    """
    c = num_clients(stacked)
    new_global = aggregate(config, global_params, stacked, weights)
    issued = broadcast(new_global, c)
    do = (jnp.asarray(step) + 1) % config.period == 0
    pick = lambda a, b: jax.tree.map(lambda x, y: jnp.where(do, x, y), a, b)
    return pick(new_global, global_params), pick(issued, stacked)
