"""The one policy contract shared by heuristics, references and learned methods.

A **policy** is any function ``policy(key, obs, state, params) -> action``: the
observation dict, the env state (references such as best response or the exact
optimum read it; learned policies ignore it) and the env params, returning an
action dict in the env's action spaces.

A **recurrent policy** (GRU agents) additionally carries a hidden state across
steps: :class:`RecurrentPolicy` holds ``init_carry(params) -> carry`` (the carry
of one episode) and ``apply(carry, key, obs, state, params, reset) -> (carry,
action)``, where ``reset`` (a boolean scalar) is ``True`` when ``obs`` is the
first observation of an episode, so the carry restarts with the episode
(auto-reset included). Calling it like a plain policy runs one step from a
fresh carry.

:func:`as_recurrent` lifts a plain policy to this form (an empty carry), which is
how :func:`jaxsg.wrappers.rollout` evaluates every method with one code path.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import chex

Policy = Callable[[chex.PRNGKey, dict, Any, Any], dict]


@dataclasses.dataclass(frozen=True)
class RecurrentPolicy:
    """A policy with a carry; see the module docstring for the contract."""

    init_carry: Callable[[Any], Any]
    apply: Callable[..., tuple[Any, dict]]

    def __call__(self, key: chex.PRNGKey, obs: dict, state: Any, params: Any) -> dict:
        import jax.numpy as jnp

        _, action = self.apply(self.init_carry(params), key, obs, state, params, jnp.array(True))
        return action


def as_recurrent(policy: Policy | RecurrentPolicy) -> RecurrentPolicy:
    """``policy`` itself if recurrent, else the same policy with an empty carry."""
    if isinstance(policy, RecurrentPolicy):
        return policy

    def apply(carry, key, obs, state, params, reset):
        del reset
        return carry, policy(key, obs, state, params)

    return RecurrentPolicy(init_carry=lambda params: (), apply=apply)
