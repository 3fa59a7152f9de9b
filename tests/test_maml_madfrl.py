"""MAML-MADFRL (SGIN Alg. 2 + 3): meta-trained initialisation, then MADFRL + FL."""

import dataclasses

import jax
import numpy as np
import pytest
from test_madfrl import (
    CONFIG as MADFRL_CONFIG,
)
from test_madfrl import (
    CONSTANT_MARGIN,
    FOLLOWER_CONFIG,
    LEADER_SHARE,
    SEEDS,
    SMALL,
    learned_vs_references,
)

import jaxsg
from agents import madfrl
from agents import maml_madfrl as mm

CONFIG = mm.Config(madfrl=MADFRL_CONFIG, meta_iterations=30, num_tasks=4, num_envs=4,
                   rollout_steps=8)


#: the followers' comparison at the posted λ₀ (no leader learns), as MADFRL's test
FOLLOWERS = dataclasses.replace(CONFIG, madfrl=FOLLOWER_CONFIG)


def _run(config):  # ≈ 2 min CPU each: slow-marked; the fast check is test_madfrl's actor test
    """The same stated margins and evaluation as MADFRL's test (``tests/test_madfrl.py``)."""
    env, _ = jaxsg.make("sgin", **SMALL)
    out = learned_vs_references(mm.make_train(env, config), mm.make_policy, config)
    print({k: v for k, v in out.items() if k != "metrics"})
    return out


@pytest.fixture(scope="module")
def maml_run():
    return _run(CONFIG)


@pytest.fixture(scope="module")
def maml_follower_run():
    return _run(FOLLOWERS)


@pytest.mark.slow
def test_maml_madfrl_beats_the_best_constant(maml_follower_run):
    """Measured (λ₀ posted, fresh critics, da8591e): −52.5 / −55.3 / −52.1 per DT-slot vs
    the best constant's −120.8 (paired leads 68.3 / 65.5 / 68.7)."""
    out = maml_follower_run
    assert out["metrics"]["meta_loss"].shape == (SEEDS, CONFIG.meta_iterations)
    assert np.all(np.isfinite(np.asarray(out["metrics"]["meta_loss"])))
    assert out["metrics"]["follower_reward"].shape == (SEEDS, CONFIG.madfrl.num_updates)
    assert np.all(out["paired_lead"] > CONSTANT_MARGIN), out


@pytest.mark.slow
def test_maml_madfrl_leader_prices_like_stackelberg(maml_run):
    """Measured (da8591e): 55.6 / 48.2 / 53.5 per slot vs the reference's 43.8 (127 / 110 /
    122 %)."""
    out = maml_run
    assert np.all(out["profit"] >= LEADER_SHARE * out["stackelberg_profit"]), out


@pytest.mark.parametrize("warm_critic", [False, True])
def test_madfrl_starts_from_the_meta_actor_and_fresh_or_warm_critics(warm_critic):
    """``fine_tune_init`` hands MADFRL θ's actor, copied to every follower (zero updates →
    init); its critics are random per follower unless ``warm_critic`` (then θ's critic)."""
    env, params = jaxsg.make("sgin", **SMALL)
    theta = mm.init_follower(env, CONFIG.madfrl, jax.random.PRNGKey(3))
    cfg = madfrl.Config(num_envs=2, num_updates=2, batch_size=8, buffer_size=8,
                        warmup_updates=10, federated=None)  # warmup > updates: no learning
    init = mm.fine_tune_init(dataclasses.replace(CONFIG, warm_critic=warm_critic), theta)
    policy_params, _ = jax.jit(madfrl.make_train(env, cfg))(jax.random.PRNGKey(0), params, init)
    n = env.num_followers

    def copies(tree, one):
        return all(np.array_equal(np.asarray(g), np.broadcast_to(w, (n,) + w.shape))
                   for g, w in zip(jax.tree.leaves(tree), jax.tree.leaves(one)))

    assert copies(policy_params["follower"], theta["actor"])
    assert copies(policy_params["follower_critic"], theta["critic"]) == warm_critic
    kernel = np.asarray(jax.tree.leaves(policy_params["follower_critic"])[-1])
    assert (np.ptp(kernel, axis=0).max() > 0) != warm_critic  # fresh: one init per follower


def test_adaptation_eval_k0_is_the_initial_policy_and_steps_change_it():
    env, params = jaxsg.make("sgin", **SMALL)
    cfg = mm.Config(madfrl=CONFIG.madfrl, num_envs=2, rollout_steps=4, inner_lr=0.05)
    theta = mm.init_follower(env, cfg.madfrl, jax.random.PRNGKey(4))
    evaluate = jax.jit(mm.make_adaptation_eval(env, cfg, (0, 0, 1, 3), horizon=10))
    r = np.asarray(evaluate(jax.random.PRNGKey(5), theta, params))
    assert r.shape == (4,) and np.all(np.isfinite(r))
    assert r[0] == r[1]  # k = 0 twice: the same, unadapted policy
    assert r[2] != r[0] or r[3] != r[0]  # adapting moves the policy


def test_config_validation():
    with pytest.raises(ValueError, match="rollout_steps"):
        mm.Config(rollout_steps=3)
    with pytest.raises(ValueError, match="inner_lr"):
        mm.Config(inner_lr=0.0)
    with pytest.raises(ValueError, match="num_tasks"):
        mm.Config(num_tasks=0)
    with pytest.raises(ValueError, match="warm_critic"):
        mm.Config(warm_critic=1)


def test_meta_train_draws_tasks_from_a_given_sampler():
    """``sample_tasks`` replaces the adapter's task distribution (issue 16 item 6)."""
    from agents.adapters import for_env

    env, params = jaxsg.make("sgin", **SMALL)
    cfg = mm.Config(madfrl=CONFIG.madfrl, meta_iterations=2, num_tasks=2, num_envs=1,
                    rollout_steps=2)
    asked = []

    def sample(key, base, n):
        asked.append(n)
        return for_env(env).sample_tasks(key, base.replace(v_weight=np.float32(3.0)), n)

    theta, metrics = jax.jit(mm.make_meta_train(env, cfg, sample))(jax.random.PRNGKey(0),
                                                                    params)
    assert asked == [2] and np.all(np.isfinite(np.asarray(metrics["meta_loss"])))


def test_adapt_k0_is_theta_and_policy_params_fit_any_number_of_followers():
    cfg = mm.Config(madfrl=madfrl.Config(agent_id=False), num_envs=1, rollout_steps=2)
    env, params = jaxsg.make("sgin", **SMALL)
    theta = mm.init_follower(env, cfg.madfrl, jax.random.PRNGKey(4))
    thetas = jax.jit(mm.make_adapt(env, cfg, (0, 1)))(jax.random.PRNGKey(5), theta, params)
    for a, t in zip(jax.tree.leaves(thetas), jax.tree.leaves(theta)):
        np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(t))
    assert any(not np.array_equal(np.asarray(a[1]), np.asarray(t))
               for a, t in zip(jax.tree.leaves(thetas["critic"]), jax.tree.leaves(theta["critic"])))
    big, _ = jaxsg.make("sgin", **dict(SMALL, users_per_mbs=SMALL["users_per_mbs"] + 2))
    pp = mm.follower_policy_params(big, cfg, theta)
    n = big.num_agents("follower")
    assert jax.tree.leaves(pp["follower"])[0].shape[0] == n
    assert jax.tree.leaves(pp["follower_critic"])[0].shape[0] == n  # greedy modes by critic
    actor_modes = dataclasses.replace(cfg, madfrl=dataclasses.replace(cfg.madfrl,
                                                                      mode_choice="actor"))
    assert "follower_critic" not in mm.follower_policy_params(big, actor_modes, theta)
