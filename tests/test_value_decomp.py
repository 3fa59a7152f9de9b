"""Recurrent IQL / VDN / QMIX (agents/value_decomp.py): reset alignment, mixers, learning."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsg
from agents import core
from agents import value_decomp as vd
from agents.heuristics import dt_deploy as H
from jaxsg.wrappers import rollout

SMALL = dict(num_users=4, num_end_devices=2, horizon=8)
#: chosen by the vmapped sweep in ``test_hparams_sweep_is_one_call_and_matches_train``'s
#: grid (lr 1e-3/3e-3/1e-2 × ε decay 0.3/0.6 × target period 2/8, 2 seeds, VDN, 150
#: iterations; last-20-iteration greedy return): lr 3e-3, ε decay 0.6, period 2
FAST = dict(num_envs=8, num_eval_envs=4, num_updates=150, updates_per_iter=2,
            batch_episodes=16, buffer_episodes=500, warmup_episodes=16, hidden=32, fc=32,
            mixer_embed=16, hyper_hidden=32, target_update_interval=2, lr=3e-3,
            eps_decay_fraction=0.6)
#: every training seed's greedy return, paired with the best constant policy on the same
#: episodes, must beat it by this fraction of |best constant return| (returns < 0)
MARGIN_CONSTANT = 0.05
#: ... and random deployment (RD, the paper's baseline) by this fraction of |RD return|
MARGIN_RD = 0.3
SEEDS = 3
EVAL_EPISODES = 32


def test_unroll_resets_memory_with_the_flag_of_its_own_step():
    cfg = vd.Config(hidden=8, fc=8)
    net = vd.AgentQNet(3, 8, 8)
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((2, 8)), jnp.zeros((2, 5)),
                      jnp.zeros((2,), bool))
    x = jax.random.normal(jax.random.PRNGKey(1), (6, 2, 5))
    resets = jnp.array([1, 0, 0, 1, 0, 0], bool)[:, None].repeat(2, 1)
    _, q = vd.unroll(net, params, jnp.ones((2, cfg.hidden)), x, resets)
    _, q_a = vd.unroll(net, params, jnp.zeros((2, 8)), x[:3], jnp.zeros((3, 2), bool))
    _, q_b = vd.unroll(net, params, jnp.zeros((2, 8)), x[3:], jnp.zeros((3, 2), bool))
    np.testing.assert_allclose(q, jnp.concatenate([q_a, q_b]), rtol=1e-6, atol=1e-6)
    # the JaxMARL-style misalignment (reset with the step's own done: flags shifted one
    # step earlier) gives different values before and after the boundary
    wrong = jnp.array([0, 0, 1, 0, 0, 1], bool)[:, None].repeat(2, 1)
    _, q_wrong = vd.unroll(net, params, jnp.zeros((2, 8)), x, wrong)
    assert not np.allclose(q_wrong[2:4], q[2:4], atol=1e-4)


def test_acting_loop_resets_at_the_first_step_of_each_episode():
    """Roll 2.5 episodes through auto-reset with the acting code; the Q-values of every
    episode equal a fresh unroll of that episode alone (h = 0 at its first step)."""
    env, params = jaxsg.make("dt_deploy", num_users=3, num_end_devices=1, horizon=4)
    cfg = vd.Config(hidden=8, fc=8)
    agent_params = vd.init_agent_params(env, cfg, jax.random.PRNGKey(0))
    reset_fn, step_fn = vd.make_actor(env, cfg)  # the training acting code, greedy

    def roll(key):
        k_reset, k_run = jax.random.split(key)
        return jax.lax.scan(lambda s, k: step_fn(agent_params, s, k, 0.0, params),
                            reset_fn(k_reset, params), jax.random.split(k_run, 10))[1]

    rec = jax.jit(roll)(jax.random.PRNGKey(1))
    np.testing.assert_array_equal(rec["resets"], [1, 0, 0, 0, 1, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(rec["done"], [0, 0, 0, 1, 0, 0, 0, 1, 0, 0])
    net = vd.AgentQNet(env.num_nodes, 8, 8)
    for start, stop in [(0, 4), (4, 8), (8, 10)]:
        x = core.with_agent_id(rec["inputs"][start:stop])
        _, q = vd.unroll(net, agent_params, jnp.zeros((3, 8)), x,
                         jnp.zeros((stop - start, 3), bool))
        np.testing.assert_allclose(rec["q"][start:stop], q, rtol=1e-5, atol=1e-6)
        # last action input is zero at an episode's first step
        np.testing.assert_array_equal(rec["inputs"][start, :, -env.num_nodes:], 0.0)
    # final inputs carry the pre-reset observation and the action just taken
    np.testing.assert_array_equal(rec["final_inputs"][3, :, -env.num_nodes:],
                                  jax.nn.one_hot(rec["actions"][3], env.num_nodes))
    # (the delay features are recomputed in another compiled path: float32 rounding)
    np.testing.assert_allclose(rec["final_inputs"][2], rec["inputs"][3], rtol=1e-6,
                               atol=1e-7)


def test_qmix_mixer_is_monotone_and_config_is_validated():
    mixer = vd.QMixer(8, 16)
    qs = jax.random.normal(jax.random.PRNGKey(0), (5, 4))
    s = jax.random.normal(jax.random.PRNGKey(1), (5, 12))
    p = mixer.init(jax.random.PRNGKey(2), qs, s)
    grad = jax.vmap(jax.grad(lambda q, s: mixer.apply(p, q, s)))(qs, s)
    assert np.all(np.asarray(grad) >= 0.0)
    with pytest.raises(ValueError, match="mixer"):
        vd.Config(mixer="sum")
    with pytest.raises(ValueError, match="gamma"):
        vd.Config(gamma=1.5)
    with pytest.raises(ValueError, match="num_envs"):
        vd.Config(num_envs=0)


def test_dt_deploy_delay_features_equal_the_env_delays_alone():
    """The adapter's features are log10 of ``env.node_delays`` with one DT per node, read
    from the observation alone, at the first step and after steps with every action."""
    from agents.adapters import dt_deploy as A

    env, params = jaxsg.make("dt_deploy", num_users=6, num_end_devices=2, horizon=5)
    obs, state = env.reset(jax.random.PRNGKey(3), params)
    for t in range(3):
        inner = getattr(state, "env_state", state)
        want = env.node_delays(inner, jnp.ones(env.num_nodes), params)
        got = A.node_delays_alone(env, obs["user"], params)
        np.testing.assert_allclose(got, want, rtol=2e-5)
        feats = A.ADAPTER.observation_features(env, obs["user"], params)
        assert feats.shape == (6, A.ADAPTER.num_observation_features(env))
        np.testing.assert_allclose(feats[:, env.obs_dim:],
                                   A.DELAY_FEATURE_SCALE * np.log10(want), rtol=1e-5,
                                   atol=1e-6)
        action = jnp.arange(6) % env.num_nodes + t
        obs, state, *_ = env.step(jax.random.PRNGKey(10 + t), state,
                                  {"user": action % env.num_nodes}, params)
    cfg = vd.Config(hidden=8, fc=8)
    assert vd._spec(env, cfg).obs_dim == env.obs_dim + env.num_nodes


def test_dt_deploy_own_rewards_average_to_the_shared_reward():
    """IQL's per-user rewards (the adapter's ``agent_rewards``): user i's own latency and
    cost term × I; their mean is the env's shared reward, users that stay local pay no
    cost, and a user's own reward changes with its own latency only."""
    from agents.adapters import dt_deploy as A

    env, params = jaxsg.make("dt_deploy", num_users=6, num_end_devices=2, horizon=5)
    _, state = env.reset(jax.random.PRNGKey(3), params)
    for action in (jnp.array([0, 1, 2, 3, 3, 0]), jnp.zeros(6, jnp.int32),
                   jnp.full((6,), 3, jnp.int32)):
        _, _, reward, *_ = env.step(jax.random.PRNGKey(4), state, {"user": action}, params)
        own = A.ADAPTER.agent_rewards(env, state, action, params)
        np.testing.assert_allclose(np.mean(own), reward["user"][0], rtol=1e-5)
        lat = env.outcome(state, action, params)["latency_s"]
        cost = params.beta * params.unit_cost * (np.asarray(action) > 0)
        np.testing.assert_allclose(own, 6 * (-params.alpha * lat - cost), rtol=1e-5)


def _episode_returns(env, params, policy, keys):
    tr = jax.jit(jax.vmap(lambda k: rollout(env, policy, k, params, env.horizon)))(keys)
    return np.asarray(tr["reward"]["user"][:, :, 0]).sum(1)  # (episodes,)


@functools.cache
def _references():
    """RD and the best constant policy (chosen on the evaluation episodes themselves,
    which favours it) on the shared evaluation episodes: per-episode returns."""
    env, params = jaxsg.make("dt_deploy", **SMALL)
    keys = jax.random.split(jax.random.PRNGKey(7), EVAL_EPISODES)
    best = H.best_constant(env, params, jax.random.PRNGKey(7), EVAL_EPISODES)
    return {"rd": _episode_returns(env, params, H.random_deploy(env), keys),
            "best_constant": _episode_returns(env, params, best, keys),
            "choice": best.choice}


def test_paired_margin_check_fails_when_the_learner_does_not_beat_the_reference():
    ref = np.array([-10.0, -12.0, -14.0])
    assert _beats(ref + 2.0, ref, 0.1)  # 2.0 > 0.1 · 12 on every episode pair
    assert not _beats(ref + 1.0, ref, 0.1)  # 1.0 < 1.2
    assert not _beats(ref, ref, 0.0)  # a tie is not a win


def _beats(learned, reference, margin):
    """Paired on episodes: mean(learned − reference) > margin · |mean(reference)|."""
    return float(np.mean(learned - reference)) > margin * abs(float(np.mean(reference)))


@pytest.mark.parametrize("mixer", [
    "vdn",  # the paper's proposed method: in the default (fast) suite
    # QMIX: same test, -m slow (≈ 1-2 min of compile and training on a loaded CPU); it
    # passes since the learners see the adapter's per-node delay features (round 3).
    pytest.param("qmix", marks=pytest.mark.slow),
    # IQL: -m slow. It passes since each user learns on its own term of the shared
    # reward (the adapter's agent_rewards); with the shared reward (own_reward=False)
    # two of three seeds stay at or below the best constant (−13.62, −14.29, −12.18).
    pytest.param("none", marks=pytest.mark.slow),
])
def test_learner_beats_best_constant_and_random_deployment(mixer):
    """Three seeds trained in one jit(vmap(train)) at the adapter's reward scale (1/I);
    each seed's greedy policy is evaluated on 32 shared episodes (the same reset and step
    keys as the references) and must beat, paired on those episodes, the best constant
    policy by ``MARGIN_CONSTANT`` and RD by ``MARGIN_RD`` of the reference's |return|.

    References on these episodes: best constant (all cloud here) −13.32 per episode, so
    the asserted bound is −12.65; greedy −11.64, sequential greedy −11.85, RD ≈ −23.6.
    Measured (commit 9d4debc): VDN −11.88 / −12.21 / −11.69, IQL −11.57 / −12.05 / −11.46
    per seed."""
    env, params = jaxsg.make("dt_deploy", **SMALL)
    config = vd.Config(mixer=mixer, **FAST)
    train = vd.make_train(env, config)
    agent_params, metrics = jax.jit(jax.vmap(train, in_axes=(0, None)))(
        jax.random.split(jax.random.PRNGKey(0), SEEDS), params)
    assert np.isfinite(np.asarray(metrics["td_loss"])).all()
    refs = _references()
    keys = jax.random.split(jax.random.PRNGKey(7), EVAL_EPISODES)


    def returns(ap, k):  # one seed's greedy policy on one episode
        tr = rollout(env, vd.make_policy(env, config, ap), k, params, env.horizon)
        return jnp.sum(tr["reward"]["user"][:, 0])

    per_seed = np.asarray(jax.jit(jax.vmap(jax.vmap(returns, (None, 0)), (0, None)))(
        agent_params, keys))  # (seeds, episodes)
    for s, learned in enumerate(per_seed):
        for ref, margin in [("best_constant", MARGIN_CONSTANT), ("rd", MARGIN_RD)]:
            assert _beats(learned, refs[ref], margin), (
                mixer, s, ref, refs["choice"], learned.mean(), refs[ref].mean())


def test_hparams_sweep_is_one_call_and_matches_train():
    """A (G=2) × (S=1) sweep in one compiled call equals ``train`` with the config set to
    each grid point (the traced lr / ε schedule / target period are the static ones)."""
    env, params = jaxsg.make("dt_deploy", num_users=3, num_end_devices=1, horizon=4)
    cfg = vd.Config(num_envs=2, num_eval_envs=1, num_updates=6, batch_episodes=2,
                    buffer_episodes=8, warmup_episodes=2, hidden=8, fc=8)
    grid, rows = vd.hparams_grid(lr=(1e-3, 1e-2), eps_decay_fraction=(0.5,),
                                 target_update_interval=(3,), config=cfg)
    assert [r["lr"] for r in rows] == [1e-3, 1e-2] and grid["lr"].shape == (2,)
    keys = jax.random.split(jax.random.PRNGKey(0), 1)
    _, m = vd.make_sweep(env, cfg)(keys, params, grid)
    assert m["td_loss"].shape == (2, 1, 6)
    for g, row in enumerate(rows):
        _, ref = jax.jit(vd.make_train(env, dataclasses.replace(cfg, **row)))(keys[0], params)
        np.testing.assert_allclose(m["epsilon"][g, 0], ref["epsilon"], rtol=1e-6)
        np.testing.assert_allclose(m["td_loss"][g, 0], ref["td_loss"], rtol=2e-3, atol=1e-6)
    with pytest.raises(ValueError, match="lr"):
        vd.hparams_grid(lr=(-1.0,), config=cfg)


def test_keep_best_returns_the_iterate_of_the_best_greedy_evaluation():
    """With one iteration the only evaluated iterate is the initial network (the greedy
    eval envs act with the parameters *before* that iteration's updates): ``keep_best``
    returns it, ``keep_best=False`` the updated last iterate."""
    env, params = jaxsg.make("dt_deploy", num_users=3, num_end_devices=1, horizon=4)
    cfg = vd.Config(num_envs=2, num_eval_envs=1, num_updates=1, batch_episodes=2,
                    buffer_episodes=8, warmup_episodes=0, hidden=8, fc=8)
    key = jax.random.PRNGKey(0)
    init = vd.init_agent_params(env, cfg, jax.random.split(key, 4)[1])
    best, m = jax.jit(vd.make_train(env, cfg))(key, params)
    last, _ = jax.jit(vd.make_train(env, dataclasses.replace(cfg, keep_best=False)))(
        key, params)
    assert np.isfinite(m["eval_return_mean"]).all()
    jax.tree.map(np.testing.assert_array_equal, best, init)
    assert not all(jax.tree.leaves(jax.tree.map(np.array_equal, last, init)))
