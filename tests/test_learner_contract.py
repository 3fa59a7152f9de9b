"""The learner contract, for every learner on every scenario it serves (smoke configs):
``Config`` → ``make_train(env, config)`` → ``train(key, env_params)`` → ``make_policy``
→ one ``jaxsg.wrappers.rollout``; every scenario detail comes from its adapter, and the
trained parameters survive a checkpoint round trip."""

import jax
import numpy as np
import pytest

import jaxsg
from agents import core, ddqn, maddpg, madfrl, maml_madfrl, mappo, value_decomp
from jaxsg.wrappers import rollout

SGIN = dict(num_mbs=1, users_per_mbs=3, num_leo=2, num_channels=2, horizon=4)
SMOKE_MADFRL = madfrl.Config(num_envs=2, num_updates=3, batch_size=4, buffer_size=4,
                             warmup_updates=1, hidden=(8,))
CASES = {
    "madfrl/sgin": ("sgin", SGIN, madfrl, SMOKE_MADFRL),
    "maml_madfrl/sgin": ("sgin", SGIN, maml_madfrl, maml_madfrl.Config(
        madfrl=SMOKE_MADFRL, meta_iterations=1, num_tasks=2, num_envs=1, rollout_steps=2)),
    "mappo/sgin": ("sgin", SGIN, mappo, mappo.Config(
        num_envs=2, num_steps=2, num_updates=2, update_epochs=1, num_minibatches=1,
        actor_hidden=(8,), critic_hidden=(8,))),
    "value_decomp/dt_deploy": ("dt_deploy", dict(num_users=3, num_end_devices=1, horizon=3),
                               value_decomp, value_decomp.Config(
                                   mixer="qmix", num_envs=2, num_eval_envs=1, num_updates=2,
                                   batch_episodes=2, buffer_episodes=4, warmup_episodes=1,
                                   hidden=8, fc=8, mixer_embed=4, hyper_hidden=8)),
    "ddqn/spectrum": ("spectrum", dict(num_satellites=2, users_per_satellite=4, num_channels=2,
                                       slots_per_channel=2, num_price_levels=3,
                                       num_power_levels=2, horizon=4),
                      ddqn, ddqn.Config(num_envs=2, num_updates=4, batch_size=4, buffer_size=8,
                                        warmup_updates=1, local_round=1, aggregation_rounds=2,
                                        hidden=(8,))),
    "maddpg/edge_assoc": ("edge_assoc",
                          dict(num_bs=3, num_users=6, num_producers=2, horizon=3), maddpg,
                          maddpg.Config(num_envs=2, num_updates=3, batch_size=4, buffer_size=8,
                                        warmup_updates=1, hidden=(8,))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_learner_trains_and_its_policy_runs_through_the_one_rollout(case, tmp_path):
    scenario, sizes, module, config = CASES[case]
    env, params = jaxsg.make(scenario, **sizes)
    train = module.make_train(env, config)
    policy_params, metrics = jax.jit(train)(jax.random.PRNGKey(0), params)
    assert jax.tree.leaves(metrics)  # (some metrics are NaN by design, e.g. "no block")
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(policy_params))
    policy = module.make_policy(env, config, policy_params)
    traj = jax.jit(lambda k: rollout(env, policy, k, params, 2 * env.horizon))(
        jax.random.PRNGKey(1))
    for cls in env.agent_classes:
        r = np.asarray(traj["reward"][cls])
        assert r.shape[0] == 2 * env.horizon and np.isfinite(r).all()
    # checkpoint round trip of the trained policy parameters (with the config as JSON)
    path = tmp_path / f"{module.__name__}.msgpack"
    core.save_checkpoint(path, policy_params, config)
    loaded = core.load_checkpoint(path, policy_params)
    jax.tree.map(np.testing.assert_array_equal, loaded, policy_params)
    assert core.load_config_json(path)
