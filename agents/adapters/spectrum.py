"""Spectrum leasing for the learners: satellites learn, rewards × 1/(p_max·capacity), the
election and block settlement (docs/spectrum.md, "The learners' ledger").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from agents.adapters.base import Adapter
from jaxsg.consensus import reputation_reset, select_aggregator


def settle_block(env, state, aggregator, params):
    """One env state after ``aggregator`` writes the block: credited B_s, reputation reset
    to 0 (−1, nobody online: unchanged)."""
    hit = jax.nn.one_hot(aggregator, env.num_satellites, dtype=jnp.float32)
    return state.replace(
        reputation=reputation_reset(state.reputation, aggregator),
        block_income=state.block_income + params.block_reward * hit,
    )


def ledger(env, env_states):
    """The chain as the election reads it: reputation and block income (S,), the mean over
    the parallel episodes (leading axis) of ``env.ledger`` of each."""
    return jax.tree.map(lambda x: jnp.mean(x, axis=0), jax.vmap(env.ledger)(env_states))


class SpectrumAdapter(Adapter):
    agent_class = "satellite"

    def reward_scale(self, env, params):
        return 1.0 / (params.price_max * env.capacity)

    def election(self, env, env_states, params):
        rep = ledger(env, env_states).reputation
        online = env_states.online[0]
        return online.astype(jnp.float32), select_aggregator(rep, online), rep

    def settle(self, env, env_states, aggregator, params):
        return jax.vmap(settle_block, in_axes=(None, 0, None, None))(
            env, env_states, aggregator, params)

    def train_metrics(self, env, before, after) -> dict:
        """The ledger and online flags the election read; block income after settling."""
        return {"reputation": ledger(env, before).reputation,
                "online": before.online[0],
                "block_income": ledger(env, after).block_income}


ADAPTER = SpectrumAdapter()
