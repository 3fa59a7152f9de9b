"""Federated aggregation over parameters stacked along a client axis.

Every function takes pytrees whose leaves carry a leading **client axis**
(``stacked``: leaf shape ``(C, ...)``) and/or the matching un-stacked global
pytree (``global_params``: leaf shape ``(...)``). Everything is pure ``jnp``
over ``jax.tree.map`` — no Python loops over clients — so it jit-compiles,
vmaps over seeds and differentiates. Sizes (``C``, ``num_groups``) are static.

Rules
-----
* :func:`weighted_average` — Σ_c w_c Z_c with w normalised to sum to 1.
* :func:`group_average` / :func:`hierarchical_average` — two-level averaging
  (e.g. DT → BS → MBS) via segment sums over integer group ids.
* :func:`coordinate_median`, :func:`trimmed_mean` — robust, unweighted rules
  for poisoning/attack experiments.
* :func:`fl_update` — the SGIN paper's server step (Sec. IV-C, eq. 34-35); its
  client weights (eq. 36) come from the scenario adapter's
  ``federated_weights`` (``agents.adapters``).
* :class:`FederatedConfig` + :func:`aggregate` / :func:`maybe_aggregate` —
  the rule and period as a small frozen config, for training loops.

Aggregator election by reputation lives in :func:`jaxsg.consensus.select_aggregator`;
it only decides *who* aggregates, the rules here decide *what* comes out.

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

PyTree = Any

RULES = ("fedavg", "median", "trimmed_mean")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _num_clients(stacked: PyTree) -> int:
    leaves = jax.tree.leaves(stacked)
    if not leaves:
        raise ValueError("stacked parameters are empty (no leaves)")
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
    if None in sizes or len(sizes) != 1:
        raise ValueError(
            f"every leaf of stacked parameters needs the same leading client axis; got {sizes}"
        )
    return sizes.pop()


def normalise(weights: jnp.ndarray, valid: jnp.ndarray | None = None) -> jnp.ndarray:
    """Non-negative weights summing to 1 (uniform over ``valid`` if they sum to 0)."""
    w = jnp.maximum(jnp.asarray(weights, jnp.result_type(float)), 0.0)
    if valid is None:
        valid = jnp.ones(w.shape, bool)
    w = jnp.where(valid, w, 0.0)
    total = jnp.sum(w)
    uniform = valid / jnp.maximum(jnp.sum(valid), 1)
    return jnp.where(total > 0, w / jnp.where(total > 0, total, 1.0), uniform)


def _cast_like(value: jnp.ndarray, like: jnp.ndarray) -> jnp.ndarray:
    like_dtype = jnp.asarray(like).dtype
    if jnp.issubdtype(like_dtype, jnp.inexact):
        return value.astype(like_dtype)
    return value


def _expand(w: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
    """Reshape a (C,) vector to broadcast against a (C, ...) leaf."""
    return w.reshape(w.shape + (1,) * (jnp.ndim(x) - 1))


# --------------------------------------------------------------------------
# averaging rules
# --------------------------------------------------------------------------


def weighted_average(stacked: PyTree, weights: jnp.ndarray) -> PyTree:
    """Σ_c w_c Z_c over the leading client axis.

    ``weights`` (C,) are clipped at 0 and normalised to sum to 1 (uniform if
    they sum to 0), so raw data sizes can be passed directly.
    """
    c = _num_clients(stacked)
    w = normalise(jnp.broadcast_to(jnp.asarray(weights), (c,)))
    return jax.tree.map(
        lambda x: _cast_like(jnp.tensordot(w, jnp.asarray(x), axes=(0, 0)), x), stacked
    )


def group_average(
    stacked: PyTree, weights: jnp.ndarray, group_ids: jnp.ndarray, num_groups: int
) -> tuple[PyTree, jnp.ndarray, jnp.ndarray]:
    """Per-group weighted averages (first level of hierarchical FL, e.g. DT → BS).

    Args:
      stacked: client parameters, leaves (C, ...).
      weights: (C,) non-negative client weights (clipped at 0); normalised
        *within* each group. A non-empty group whose weights are all 0 takes
        the plain mean of its members.
      group_ids: (C,) int in [0, num_groups); ids outside are dropped.
      num_groups: static number of groups G.

    Returns:
      ``(group_params, group_weight, group_count)``: leaves (G, ...), the sum of
      client weights per group (G,) and the member count per group (G,).
      Empty groups get all-zero parameters and count 0.
    """
    c = _num_clients(stacked)
    w = jnp.maximum(jnp.broadcast_to(jnp.asarray(weights, jnp.result_type(float)), (c,)), 0.0)
    ids = jnp.asarray(group_ids, jnp.int32)
    seg = lambda v: jax.ops.segment_sum(v, ids, num_segments=num_groups)
    total = seg(w)
    count = seg(jnp.ones((c,), w.dtype))
    # Within-group normalised weight of each client (plain mean if the group's weights are 0).
    tot_c, cnt_c = total[ids], count[ids]
    w_in = jnp.where(tot_c > 0, w / jnp.where(tot_c > 0, tot_c, 1.0), 1.0 / jnp.maximum(cnt_c, 1))

    def leaf(x):
        x = jnp.asarray(x)
        return _cast_like(seg(_expand(w_in, x) * x), x)

    return jax.tree.map(leaf, stacked), total, count


def hierarchical_average(
    stacked: PyTree,
    weights: jnp.ndarray,
    group_ids: jnp.ndarray,
    num_groups: int,
    group_weights: jnp.ndarray | None = None,
) -> PyTree:
    """Two-level average: clients → groups (:func:`group_average`) → global.

    The second level weights each non-empty group by ``group_weights`` (G,)
    (normalised over non-empty groups), or by default by the group's total
    client weight — in which case the result equals the flat
    :func:`weighted_average` (hierarchical FedAvg is exact). Empty groups never
    contribute.
    """
    group_params, total, count = group_average(stacked, weights, group_ids, num_groups)
    nonempty = count > 0
    if group_weights is None:
        gw = normalise(total, nonempty)
    else:
        gw = normalise(jnp.broadcast_to(jnp.asarray(group_weights), (num_groups,)), nonempty)
    return jax.tree.map(
        lambda x: _cast_like(jnp.tensordot(gw, x, axes=(0, 0)), x), group_params
    )


def coordinate_median(stacked: PyTree) -> PyTree:
    """Coordinate-wise median over clients (unweighted; mean of the two middle values
    if C is even)."""
    _num_clients(stacked)
    return jax.tree.map(lambda x: _cast_like(jnp.median(jnp.asarray(x), axis=0), x), stacked)


def trimmed_mean(stacked: PyTree, trim_fraction: float) -> PyTree:
    """Coordinate-wise trimmed mean: drop the k = ⌊trim_fraction·C⌋ smallest and largest values.

    ``trim_fraction`` in [0, 0.5); it may be traced. k is capped at
    (C − 1) // 2 so at least one value per coordinate remains.
    """
    if isinstance(trim_fraction, (int, float)) and not 0.0 <= trim_fraction < 0.5:
        raise ValueError(f"trim_fraction must be in [0, 0.5); got {trim_fraction}")
    c = _num_clients(stacked)
    k = jnp.clip(jnp.floor(jnp.asarray(trim_fraction) * c), 0, (c - 1) // 2).astype(jnp.int32)
    rank = jnp.arange(c)
    keep = ((rank >= k) & (rank < c - k)).astype(jnp.result_type(float))
    keep = keep / jnp.sum(keep)

    def leaf(x):
        x = jnp.asarray(x)
        s = jnp.sort(x, axis=0)
        return _cast_like(jnp.tensordot(keep, s, axes=(0, 0)), x)

    return jax.tree.map(leaf, stacked)


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
        lambda z, a: _cast_like(z + u * (a - z), z), global_params, target
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
    c = _num_clients(stacked)
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
    c = _num_clients(stacked)
    new_global = aggregate(config, global_params, stacked, weights)
    issued = broadcast(new_global, c)
    do = (jnp.asarray(step) + 1) % config.period == 0
    pick = lambda a, b: jax.tree.map(lambda x, y: jnp.where(do, x, y), a, b)
    return pick(new_global, global_params), pick(issued, stacked)
