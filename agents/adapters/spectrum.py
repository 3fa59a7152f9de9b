"""Spectrum leasing (reputation-elected federated DDQN) for the learners.

* satellites learn; rewards are scaled by 1/(p_max·capacity) (revenue in [0, 1]);
* the ledger (the chain: reputation, block income) persists across episodes and lives in
  the learner's state: the batched env state the learner carries
  (``TrainState.env_state``), whose automatic reset keeps it
  (``SpectrumEnv.reset_for_autoreset``). :func:`ledger` reads it with ``env.ledger`` from the
  state the step returned — before any explicit reset; a learner that resets explicitly
  continues it with ``env.reset_with_ledger``. Only the learner's first reset starts a
  fresh chain;
* the election reads that ledger — the mean over the parallel episodes of the
  per-satellite reputation — and the online flags of episode 0 (the parallel
  episodes are extra experience of the same satellites; the ledger is one), then
  :func:`jaxsg.consensus.select_aggregator`: the online satellite with the highest
  reputation at election time;
* :func:`settle_block`: the elected aggregator writes the block, is credited
  B_s and its reputation is reset to 0 (:func:`jaxsg.consensus.reputation_reset`);
  −1 (nobody online) is a no-op. Applied to every parallel episode.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from agents.adapters.base import Adapter
from jaxsg.consensus import reputation_reset, select_aggregator


def settle_block(env, state, aggregator, params):
    """One env state after ``aggregator`` (−1: nobody) writes the block."""
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
