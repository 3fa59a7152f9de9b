"""SGIN for the learners: followers learn, the leader posts ``params.price`` unless learned;
the action encoding (docs/learners.md §Networks), eq. 36's weights, MAML's arrival regimes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from agents.adapters.base import Adapter
from agents.federated import normalise

MBIT = 1e6
#: meta-training regimes [A_min, A_max] (Mbit per slot) and Lyapunov weight range
TASK_ARRIVALS_MBIT = ((2.0, 4.0), (4.0, 8.0), (8.0, 12.0))
TASK_V_RANGE = (5.0, 20.0)


def sgin_weights(task_bits: jnp.ndarray, distance_m: jnp.ndarray) -> jnp.ndarray:
    """Eq. 36, unit-free (docs/sgin.md decision 2): w = ½·D/ΣD + ½·L/ΣL, D task bits and L
    LEO distance (C,), clipped at 0 (a term of total 0 is uniform); w sums to 1."""
    d = jnp.asarray(task_bits, jnp.result_type(float))
    dist = jnp.asarray(distance_m, jnp.result_type(float))
    d, dist = jnp.broadcast_arrays(d, dist)
    if d.ndim != 1:
        raise ValueError(f"task_bits and distance_m must be (C,) vectors; got shape {d.shape}")
    return 0.5 * normalise(d) + 0.5 * normalise(dist)


def _check_interval(name: str, value, ndim_ok=(1, 2)) -> None:
    """Concrete sanity checks (skipped for traced inputs)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return
    if arr.ndim not in ndim_ok or arr.shape[-1] != 2 or arr.size == 0:
        raise ValueError(f"{name} must have shape (2,) or (K, 2); got {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"{name} must be finite and >= 0; got {arr}")
    if np.any(arr[..., 0] > arr[..., 1]):
        raise ValueError(f"{name} needs low <= high in every row; got {arr}")


def sample_tasks(key, base_params, num_tasks: int, arrival_ranges=None, v_range=None):
    """Tasks Γ: ``base_params`` with a leading task axis, A_min, A_max and V drawn per task from
    ``arrival_ranges`` (bits; (K, 2): a row per task, (2,): two sorted uniform draws) and
    ``v_range`` (lo, hi); defaults :data:`TASK_ARRIVALS_MBIT`, :data:`TASK_V_RANGE`."""
    if arrival_ranges is None:
        arrival_ranges = np.asarray(TASK_ARRIVALS_MBIT) * MBIT
    v_range = TASK_V_RANGE if v_range is None else v_range
    _check_interval("arrival_ranges", arrival_ranges)
    _check_interval("v_range", v_range, ndim_ok=(1,))
    return _sample_tasks(key, base_params, int(num_tasks),
                         jnp.asarray(arrival_ranges, jnp.float32),
                         jnp.asarray(v_range, jnp.float32))


@functools.partial(jax.jit, static_argnums=2)
def _sample_tasks(key, base_params, num_tasks, ranges, v_range):
    k_regime, k_v = jax.random.split(key)
    if ranges.ndim == 2:
        idx = jax.random.randint(k_regime, (num_tasks,), 0, ranges.shape[0])
        a_min, a_max = ranges[idx, 0], ranges[idx, 1]
    else:
        u = jax.random.uniform(k_regime, (num_tasks, 2), minval=ranges[0], maxval=ranges[1])
        a_min, a_max = jnp.min(u, axis=-1), jnp.max(u, axis=-1)
    v = jax.random.uniform(k_v, (num_tasks,), minval=v_range[0], maxval=v_range[1])
    batch = jax.tree.map(
        lambda x: jnp.broadcast_to(jnp.asarray(x), (num_tasks,) + jnp.shape(x)), base_params)
    return batch.replace(arrival_min_bits=a_min, arrival_max_bits=a_max, v_weight=v)


class SginAdapter(Adapter):
    agent_class = "follower"
    leader_class = "leader"
    #: a learning leader posts one price to every DT: the Stackelberg reference's freedom
    leader_shared = True
    relative_heads = ("channel",)
    ranked_heads = (("leo", "path_loss"),)
    #: MADFRL's actor gives the mode-relative ``cpu`` one value per offload mode
    #: (``agents.networks.select_modes``); ignored under ``payoff="paper"`` (``cpu_ghz``)
    mode_heads = (("cpu", "offload"),)

    def fixed_actions(self, env, params) -> dict:
        """The leader posts ``params.price`` to every DT."""
        return {"leader": jnp.full((1, env.num_agents("follower")), params.price, jnp.float32)}

    def leader_bounds(self, env, params):
        """[0.5, 1.5]·λ₀ (the Stackelberg grid) clipped to [λ_min, λ_max] (docs/learners.md)."""
        shape = (1, env.num_agents("follower"))
        low = jnp.maximum(0.5 * params.price, params.price_min)
        high = jnp.minimum(1.5 * params.price, params.price_max)
        return ({"action": jnp.full(shape, low, jnp.float32)},
                {"action": jnp.full(shape, high, jnp.float32)})

    def federated_weights(self, env, obs):
        """Eq. 36 from the followers' own observations (E, n, d), averaged over envs."""
        where = env.observation_slices("follower")
        task = jnp.mean(obs[..., where["arrivals"]][..., 0], axis=0)
        dist = jnp.mean(jnp.min(jnp.hypot(obs[..., where["x"]], obs[..., where["y"]]), -1), 0)
        return sgin_weights(task, dist)

    def sample_tasks(self, key, base_params, num_tasks: int):
        return sample_tasks(key, base_params, num_tasks)


ADAPTER = SginAdapter()
