"""Ecosystem adapters: JaxMARL's ``MultiAgentEnv`` and PettingZoo's ``ParallelEnv``.

Both present a jaxsg scenario per *agent* (``"user_0"``, ``"follower_3"``,
``"leader_0"``, …) instead of per agent class, with one observation vector (padded to
one length across classes) and one scalar reward per agent, and hybrid actions
flattened per agent: ``action_encoding="discrete"`` (default; ``Discrete`` or
``MultiDiscrete``, each continuous component binned into ``num_bins`` levels) or
``"box"`` (one ``Box``; discrete components as floored reals). Action masks are the
scenario's ``avail_actions`` flattened the same way.

JaxMARL (pure JAX, jit/vmap; params closed over)::

    import jax
    from jaxsg.interop.jaxmarl import JaxMARLAdapter

    env = JaxMARLAdapter("dt_deploy", num_users=8, world_state=True)
    obs, state = env.reset(jax.random.PRNGKey(0))          # obs["user_0"]: (D,)
    avail = env.get_avail_actions(state)                    # avail["user_0"]: (n,) bool
    actions = {a: env.action_space(a).sample(k, avail[a])
               for a, k in zip(env.agents, jax.random.split(jax.random.PRNGKey(1),
                                                            env.num_agents))}
    obs, state, rewards, dones, infos = env.step(jax.random.PRNGKey(2), state, actions)
    dones["__all__"], obs["world_state"]                    # centralised-critic input

PettingZoo (host side, NumPy in/out; ``pip install -e ".[interop]"``)::

    from jaxsg.interop.pettingzoo import ParallelEnv

    env = ParallelEnv("spectrum", num_satellites=4, horizon=20)
    obs, infos = env.reset(seed=0)
    while env.agents:
        actions = {a: env.action_space(a).sample(infos[a]["action_mask"])
                   for a in env.agents}
        obs, rewards, terminations, truncations, infos = env.step(actions)

Both accept a scenario name plus :func:`jaxsg.make` keyword arguments, or a built
``(env, params)`` pair. ``jaxsg.interop.pettingzoo`` imports pettingzoo and gymnasium
(the ``interop`` extra); ``jaxsg.interop.jaxmarl`` needs neither jaxmarl nor them.
"""

from jaxsg.interop.jaxmarl import JaxMARLAdapter, JaxMARLState, MultiDiscrete

__all__ = ["JaxMARLAdapter", "JaxMARLState", "MultiDiscrete"]
