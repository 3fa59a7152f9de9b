"""DT deployment (recurrent value decomposition) for the learners: users learn with the
shared team reward, normalised per user, on their observation plus the delay it implies
at every node.

Reward normalisation (the same for IQL, VDN and QMIX): the team reward −(α·L_sum +
β·ς·m) grows with the number of users I (≈ −9 per step at 20 users for the optimum), so
a config that leaves ``reward_scale`` None learns on the reward × 1/I, the negative
per-user objective (order 1 at every I). Round 1 scaled only IQL (by 1/I) and left VDN
and QMIX at scale 1, so the learners were not compared on the same footing.

Delay features (:meth:`DtDeployAdapter.observation_features`): the raw observation holds
D/D_max, μ/μ_max, f/f_max and the rates, but a node's delay is a product/quotient of them
(μ·D/f, D/r_ij + μ·D/F_j, ...), which a small ReLU network fed O(1) linear features does
not learn in a few hundred gradient steps: round 2's learners tied the all-local
constant. The adapter appends, for every node, log10 of the delay the user would have
there *alone* (eq. 1, 5, 6-10 with one DT on the node): a deterministic function of the
user's own observation and the public parameters, with no other user's draws. How the
delay grows with the others' choices (the last loads stay in the observation) and so
where to go is left to the learner. Alone rather than "the others' last load + 1": the
latter is the simultaneous best response's signal (``greedy``), which herds and loses to
the all-local constant; on it the learners oscillated between crowding the cloud and
all-local (round-3 probe, 20 users).
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

    def num_observation_features(self, env) -> int:
        return env.obs_dim + env.num_nodes


ADAPTER = DtDeployAdapter()
