"""agents.core building blocks: config validation, agent ids, stacked nets, schedules,
target updates, gating, GAE, double-Q, OU noise, checkpoints, heuristics.get."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsg
from agents import core, ddqn, heuristics, maddpg, madfrl, maml_madfrl, mappo, value_decomp


@pytest.mark.parametrize("module, field, value, allowed", [
    (ddqn, "gamma", 1.5, "[0, 1]"),
    (maddpg, "num_updates", 0, "integer in [1, inf]"),
    (madfrl, "tau", -0.1, "[0, 1]"),
    (mappo, "lr", 0.0, "(0, inf)"),
    (value_decomp, "eps_decay_fraction", 2.0, "[0, 1]"),
    (maml_madfrl, "inner_steps", -1, "integer in [0, inf]"),
    (ddqn, "batch_size", 2.5, "integer in [1, inf]"),
    (mappo, "reward_scale", float("nan"), "(0, inf)"),
])
def test_every_config_reports_the_field_and_its_range(module, field, value, allowed):
    with pytest.raises(ValueError) as err:
        module.Config(**{field: value})
    msg = str(err.value)
    assert msg.startswith("Config: field") and f"'{field}'" in msg and allowed in msg


def test_agent_ids_and_stacked_apply():
    x = jnp.zeros((2, 3, 4))
    ids = core.with_agent_id(x)[..., 4:]
    np.testing.assert_array_equal(ids[1], np.eye(3))
    net = nn.Dense(2)
    params = core.stacked_init(net.init, jax.random.PRNGKey(0), 3, jnp.zeros((4,)))
    obs = jax.random.normal(jax.random.PRNGKey(1), (5, 3, 4))
    out = core.stacked_apply(net.apply, params, obs)
    assert out.shape == (5, 3, 2)
    agent1 = jax.tree.map(lambda p: p[1], params)
    np.testing.assert_allclose(out[:, 1], net.apply(agent1, obs[:, 1]), rtol=1e-5, atol=1e-6)
    assert not np.allclose(out[:, 0], out[:, 1])  # independent inits


def test_schedules_targets_and_gating():
    for steps in (10, jnp.float32(10.0)):  # static, or traced (a swept decay fraction)
        eps = core.linear(1.0, 0.1, steps)
        np.testing.assert_allclose([eps(0), eps(5), eps(10), eps(50)], [1.0, 0.55, 0.1, 0.1],
                                   rtol=1e-6)
    np.testing.assert_allclose(jax.jit(lambda s: core.linear(1.0, 0.0, s)(3))(0.5), 0.0)
    online, target = {"w": jnp.ones(2)}, {"w": jnp.zeros(2)}
    np.testing.assert_allclose(core.soft_update(online, target, 0.25)["w"], 0.25)
    np.testing.assert_allclose(core.hard_update(online, target, jnp.int32(6), 3)["w"], 1.0)
    np.testing.assert_allclose(core.hard_update(online, target, jnp.int32(7), 3)["w"], 0.0)
    np.testing.assert_allclose(core.gate(jnp.array(False), online, target)["w"], 0.0)


def test_per_client_gating_and_per_agent_optimiser_steps():
    stacked, glob = {"w": jnp.arange(6.0).reshape(3, 2)}, {"w": jnp.full(2, -1.0)}
    out = core.gate(jnp.array([True, False, True]), stacked, glob)["w"]
    np.testing.assert_allclose(out, [[0.0, 1.0], [-1.0, -1.0], [4.0, 5.0]])
    # one step per agent: agent i's update only uses agent i's gradient and state
    tx = core.adam(0.1, 10.0)
    params = {"w": jnp.zeros((2, 3))}
    grads = {"w": jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])}
    new, _ = core.stacked_step(tx, params, jax.vmap(tx.init)(params), grads)
    np.testing.assert_allclose(new["w"], [[-0.1, 0.0, 0.0], [0.0, 0.0, 0.0]], atol=1e-6)
    greedy, random = jnp.zeros(1000, jnp.int32), jnp.ones(1000, jnp.int32)
    a = core.epsilon_greedy(jax.random.PRNGKey(0), 0.3, greedy, random)
    assert a.dtype == jnp.int32 and 0.25 < float(a.mean()) < 0.35
    assert not core.epsilon_greedy(jax.random.PRNGKey(0), 0.0, greedy, random).any()


def test_actor_critic_step_updates_the_critic_first_and_the_targets_softly():
    tx = core.adam(0.1, 10.0)
    ac = core.ActorCritic.create({"a": jnp.zeros((2, 1))}, {"c": jnp.zeros((2, 1))}, tx, tx)
    seen = {}

    def actor_loss(actor, critic):  # the actor sees the critic after its own step
        seen["critic"] = critic["c"]
        return jnp.sum((actor["a"] - critic["c"]) ** 2)

    critic_loss = lambda c: (jnp.sum((c["c"] - 1.0) ** 2), jnp.float32(7.0))
    new, c_loss, a_loss, aux = core.actor_critic_step(ac, critic_loss, actor_loss, tx, tx, 0.5)
    np.testing.assert_allclose(seen["critic"], 0.1, atol=1e-6)  # Adam's first step: lr
    np.testing.assert_allclose(new.critic["c"], 0.1, atol=1e-6)
    np.testing.assert_allclose(new.target_critic["c"], 0.05, atol=1e-6)  # τ = 0.5
    np.testing.assert_allclose(new.actor["a"], 0.1, atol=1e-6)  # towards the new critic
    assert float(c_loss) == 2.0 and float(aux) == 7.0 and float(a_loss) > 0


def test_gae_stops_at_episode_ends_and_bootstraps_truncation():
    r = jnp.array([1.0, 1.0, 1.0])[:, None]
    v = jnp.array([0.5, 0.5, 0.5])[:, None]
    nv = jnp.array([2.0, 3.0, 4.0])[:, None]
    term = jnp.array([0.0, 1.0, 0.0])[:, None]
    done = jnp.array([0.0, 1.0, 1.0])[:, None]  # step 2 truncated
    adv, ret = core.gae(r, v, nv, term, done, gamma=0.9, lam=0.5)
    d2 = 1.0 + 0.9 * 4.0 - 0.5  # truncation bootstraps from V(final obs)
    d1 = 1.0 - 0.5  # termination does not
    d0 = 1.0 + 0.9 * 2.0 - 0.5
    np.testing.assert_allclose(adv[:, 0], [d0 + 0.45 * d1, d1, d2], rtol=1e-6)
    np.testing.assert_allclose(ret, adv + v, rtol=1e-6)


def test_double_q_target_uses_online_argmax_and_target_value():
    q_online = jnp.array([[1.0, 5.0, 2.0]])
    q_target = jnp.array([[10.0, 3.0, 7.0]])
    y = core.double_q_target(jnp.array([1.0]), q_online, q_target, 0.5)
    np.testing.assert_allclose(y, [1.0 + 0.5 * 3.0])
    y = core.double_q_target(jnp.array([1.0]), q_online, q_target, 0.5, double=False)
    np.testing.assert_allclose(y, [1.0 + 0.5 * 10.0])
    mask = jnp.array([[True, False, True]])
    y = core.double_q_target(jnp.array([0.0]), q_online, q_target, 1.0, mask)
    np.testing.assert_allclose(y, [7.0])


def test_ou_noise_reverts_to_zero():
    x = jnp.full((4096,), 2.0)
    x1 = core.ou_step(x, jax.random.PRNGKey(0), 0.15, 0.0)
    np.testing.assert_allclose(x1, 1.7, rtol=1e-6)
    x2 = core.ou_step(jnp.zeros((4096,)), jax.random.PRNGKey(0), 0.15, 0.3)
    assert abs(float(jnp.std(x2)) - 0.3) < 0.02


def test_checkpoint_round_trip_with_config(tmp_path):
    params = {"a": jnp.arange(6.0).reshape(2, 3), "b": {"c": jnp.ones((4,), jnp.int32)}}
    cfg = madfrl.Config(num_updates=3)
    path = tmp_path / "sub" / "ckpt.msgpack"
    core.save_checkpoint(path, params, cfg)
    template = jax.tree.map(jnp.zeros_like, params)
    loaded = core.load_checkpoint(path, template)
    jax.tree.map(np.testing.assert_array_equal, loaded, params)
    stored = core.load_config_json(path)
    assert stored["num_updates"] == 3 and stored["federated"]["rule"] == "fedavg"
    assert dataclasses.asdict(cfg)["num_updates"] == 3
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]


def test_heuristics_get_reads_each_scenario_table():
    env, _ = jaxsg.make("spectrum")
    assert callable(heuristics.get("spectrum", "myopic_optimal", env))
    with pytest.raises(ValueError, match="known: .*average_budget"):
        heuristics.get("spectrum", "nope", env)
    with pytest.raises(ValueError, match="unknown scenario"):
        heuristics.get("atlantis", "x", env)


def test_single_class_learners_refuse_a_two_class_env_by_name():
    env, _ = jaxsg.make("sgin", num_mbs=1, users_per_mbs=3, num_leo=2, num_channels=2)
    for module, name in ((maddpg, "MADDPG"), (value_decomp, "value_decomp")):
        with pytest.raises(ValueError, match=f"{name} learns one agent class"):
            module.make_train(env, module.Config())


def test_greedy_marks_untrustworthy_rows_invalid():
    q = jnp.array([[1.0, 2.0, 0.0], [jnp.nan, 1.0, 2.0], [-jnp.inf, -jnp.inf, -jnp.inf],
                   [-jnp.inf, 3.0, 1.0], [jnp.inf, 0.0, 0.0]])
    np.testing.assert_array_equal(core.greedy(q), [1, jaxsg.INVALID_ACTION,
                                                   jaxsg.INVALID_ACTION, 1,
                                                   jaxsg.INVALID_ACTION])
    assert core.greedy(q).dtype == jnp.int32


def test_a_diverged_ddqn_policy_is_flagged_by_the_env_not_read_as_option_0():
    """NaN network parameters → NaN Q-values → INVALID_ACTION → NaN reward and a count of
    every agent in ``info["nonfinite_action"]`` (issue 15: never mapped to a valid one)."""
    env, params = jaxsg.make("spectrum", num_satellites=2, users_per_satellite=4,
                             num_channels=2, horizon=3)
    cfg = ddqn.Config(hidden=(8,))
    cls = "satellite"
    n = env.num_agents(cls)
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    net = ddqn.q_network(env.action_space(cls).n, cfg)
    one = net.init(jax.random.PRNGKey(1), obs[cls][0])
    nan = jax.tree.map(lambda x: jnp.full((n,) + x.shape, jnp.nan), one)
    action = ddqn.make_policy(env, cfg, nan)(jax.random.PRNGKey(2), obs, state, params)
    np.testing.assert_array_equal(action[cls], jaxsg.INVALID_ACTION)
    _, _, reward, _, _, info = env.step(jax.random.PRNGKey(3), state, action, params)
    assert float(info["nonfinite_action"]) == n and np.all(np.isnan(reward[cls]))


@pytest.mark.parametrize("learner", ["madfrl", "mappo"])
def test_diverged_hybrid_policies_emit_invalid_discrete_heads(learner):
    """NaN actor parameters: every discrete head of every follower is INVALID_ACTION (not
    option 0) and the env counts every follower in ``info["nonfinite_action"]``."""
    env, params = jaxsg.make("sgin", num_mbs=1, users_per_mbs=3, num_leo=2, num_channels=2,
                             horizon=3)
    module = {"madfrl": madfrl, "mappo": mappo}[learner]
    cfg = (madfrl.Config(num_envs=2, num_updates=2, batch_size=2, warmup_updates=1)
           if learner == "madfrl" else
           mappo.Config(num_envs=2, num_steps=2, num_updates=1, num_minibatches=1))
    trained, _ = jax.jit(module.make_train(env, cfg))(jax.random.PRNGKey(0), params)
    nan = jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), trained)
    obs, state = env.reset(jax.random.PRNGKey(1), params)
    action = module.make_policy(env, cfg, nan)(jax.random.PRNGKey(2), obs, state, params)
    for head, value in action["follower"].items():
        if jnp.issubdtype(value.dtype, jnp.integer):
            np.testing.assert_array_equal(value, jaxsg.INVALID_ACTION, err_msg=head)
    _, _, reward, _, _, info = env.step(jax.random.PRNGKey(3), state, action, params)
    assert float(info["nonfinite_action"]) >= env.num_agents("follower")
    assert np.all(np.isnan(reward["follower"]))
