"""DT deployment for the learners: reward × 1/I, IQL's per-user reward, delay features
(docs/dt_deploy.md, "Learners: what they see and how they are trained").
"""

from __future__ import annotations

import jax.numpy as jnp

from agents.adapters.base import Adapter
from jaxsg.scenarios.dt_deploy import RATE_SCALE_BPS

#: the delay features are log10(delay / 1 s) × this (O(1): delays span 0.01 s to 10⁶ s)
DELAY_FEATURE_SCALE = 0.5


def node_delays_alone(env, obs: jnp.ndarray, params) -> jnp.ndarray:
    """``(..., I, E+2)`` delay (s) of each user at each node with no other DT there, from
    the observation ``(..., I, 4E+11)`` alone (layout: ``jaxsg.scenarios.dt_deploy``);
    equals ``env.node_delays(state, ones, params)`` of the observed state."""
    e = env.num_end_devices
    d = obs[..., 0] * params.data_max_bits
    cycles = d * obs[..., 1] * params.cycles_per_bit_max
    f = obs[..., 2] * params.local_cpu_max_hz
    r_d2d = obs[..., 3 + e: 3 + 2 * e] * RATE_SCALE_BPS
    step = jnp.round(obs[..., -1] * env.horizon).astype(jnp.int32)
    sat = env.sat_links(step, params)
    local = cycles / f
    end = d[..., None] / r_d2d + cycles[..., None] / params.end_cpu_hz
    r_is = env.uplink_rate(sat, jnp.ones_like(d), params)
    cloud = (d / r_is + d / sat["feeder_rate_bps"] + 2.0 * sat["distance_m"]
             / params.speed_of_light + cycles / params.cloud_cpu_hz)
    return jnp.concatenate([local[..., None], end, cloud[..., None]], axis=-1)


class DtDeployAdapter(Adapter):
    agent_class = "user"

    def reward_scale(self, env, params):
        return 1.0 / env.num_users

    def observation_features(self, env, obs: jnp.ndarray, params) -> jnp.ndarray:
        """The observation ‖ scaled log10 delays alone at each node
        (:func:`node_delays_alone`)."""
        delays = node_delays_alone(env, obs, params)
        return jnp.concatenate([obs, DELAY_FEATURE_SCALE * jnp.log10(delays)], axis=-1)

    def agent_rewards(self, env, state, action: jnp.ndarray, params) -> jnp.ndarray:
        """``(I,)`` each user's own term of the shared reward (eq. 18 per user), × I so
        that their mean is the shared reward: I·(−α·L_i − β·ς·[DT i off its device])."""
        out = env.outcome(state, action, params)
        cost = params.beta * params.unit_cost * (out["placement"] > 0)
        return env.num_users * (-params.alpha * out["latency_s"] - cost)

    def num_observation_features(self, env) -> int:
        return env.obs_dim + env.num_nodes


ADAPTER = DtDeployAdapter()
