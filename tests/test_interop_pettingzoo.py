"""PettingZoo ``ParallelEnv`` adapter (``jaxsg.interop.pettingzoo``) on every scenario.

Small configs (short horizons) so each scenario compiles and runs in seconds:

* PettingZoo's own ``parallel_api_test`` passes;
* a seeded episode: observations lie in the gymnasium spaces, masks have the
  flattened length, every agent is removed at the end (truncation at the horizon,
  terminations kept apart), ``reset(seed)`` is deterministic, the step compiled once;
* the observation returned at the end is the episode's final one, not the
  auto-reset one (dt_deploy's last feature is t/T = 1 there and 0 after a reset);
* bad input (missing agents, stepping a finished episode, render modes, sizes)
  raises ``ValueError``.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

gymnasium = pytest.importorskip(
    "gymnasium", reason="gymnasium not installed (pip install -e '.[interop]')")

pytest.importorskip("pettingzoo", reason="pettingzoo not installed (pip install -e '.[interop]')")

from pettingzoo.test import parallel_api_test  # noqa: E402

from jaxsg.interop.pettingzoo import ParallelEnv  # noqa: E402

HORIZON = 4
CONFIGS = {
    "dt_deploy": dict(num_users=5, num_end_devices=2, horizon=HORIZON),
    "sgin": dict(num_mbs=2, users_per_mbs=2, num_leo=2, num_channels=3, horizon=HORIZON),
    "spectrum": dict(num_satellites=3, users_per_satellite=8, num_channels=3,
                     num_price_levels=5, horizon=HORIZON),
    "edge_assoc": dict(num_users=6, num_bs=3, num_subchannels=2, num_producers=2,
                       horizon=HORIZON),
}


@pytest.mark.parametrize("name,encoding", [(n, "discrete") for n in sorted(CONFIGS)]
                         + [("sgin", "box")])
def test_parallel_env(name, encoding):
    env = ParallelEnv(name, action_encoding=encoding, **CONFIGS[name])
    parallel_api_test(env, num_cycles=3 * HORIZON)

    obs, infos = env.reset(seed=7)
    assert env.agents == env.possible_agents
    first = obs
    steps = 0
    while env.agents:
        for a in env.agents:
            assert env.observation_space(a).contains(obs[a]), (a, obs[a])
            mask = infos[a]["action_mask"]
            space = env.action_space(a)
            if encoding == "box":  # sgin: masks of offload, drop, leo, channel; none for leader
                assert isinstance(space, gymnasium.spaces.Box)
                c = CONFIGS["sgin"]
                n_opts = 2 + 2 + c["num_leo"] + c["num_channels"] if a.startswith("f") else 0
            else:
                n_opts = space.n if hasattr(space, "n") else int(np.sum(space.nvec))
            assert mask.shape == (n_opts,) and mask.dtype == np.int8
        actions = {a: env.action_space(a).sample() for a in env.agents}
        obs, rewards, terms, truncs, infos = env.step(actions)
        steps += 1
        assert set(rewards) == set(terms) == set(truncs) == set(obs) == set(infos)
        assert all(np.isfinite(r) for r in rewards.values())
    assert steps == HORIZON
    if name == "dt_deploy":  # the final observation, not the auto-reset one: t/T = 1
        assert all(np.isclose(o[-1], 1.0) for o in obs.values())
        assert all(o[-1] == 0.0 for o in first.values())
    assert all(truncs.values()) and not any(terms.values())
    assert env.agents == []
    with pytest.raises(ValueError, match="episode is over"):
        env.step(actions)

    again, _ = env.reset(seed=7)
    assert all(np.array_equal(first[a], again[a]) for a in first)
    state_7 = jax.tree.leaves(env._state)
    env.reset(seed=8)  # spectrum's first observation is the same for every seed: compare states
    assert not all(np.array_equal(x, y) for x, y in zip(state_7, jax.tree.leaves(env._state)))
    assert env._step._cache_size() == 1, "the jitted step compiled more than once"
    assert env.state().shape == env.state_space.shape
    with pytest.raises(ValueError, match="missing agents"):
        env.step({env.agents[0]: actions[env.agents[0]]})


def test_bad_input():
    with pytest.raises(ValueError, match="render_mode"):
        ParallelEnv("dt_deploy", render_mode="human", **CONFIGS["dt_deploy"])
    with pytest.raises(ValueError, match="num_users"):
        ParallelEnv("dt_deploy", num_users=0)
