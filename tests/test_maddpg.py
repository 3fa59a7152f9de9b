"""MADDPG (agents/maddpg.py) on ``edge_assoc``: config validation, the jit(vmap(train))
contract, soft target updates, and learning: on a small config (6 users, 2 BSs, the env's
default ``interference_model="orthogonal"``) the trained BSs' objective T/(1 − θ_G) beats
the best constant policy and average association by stated margins, paired over seeds."""

import functools

import jax
import numpy as np
import pytest

import jaxsg
from agents.heuristics import edge_assoc as H
from agents.maddpg import ActionCodec, Config, make_policy, make_train, shaped_reward
from jaxsg.wrappers import rollout

SMALL = {"num_users": 6, "num_bs": 2, "num_subchannels": 2, "num_producers": 1, "horizon": 10}
LEARN = Config(num_envs=8, num_updates=8000, batch_size=64, hidden=(64, 64),
               warmup_updates=50, gamma=0.5, noise_start=0.3, actor_lr=1e-3)
SEEDS = 3
EPISODES = 32  # shared evaluation episodes (keys from EVAL_KEY) for every policy
EVAL_KEY = 123
MARGIN_CONST = 0.06  # mean paired gap to the best constant policy (fraction)
MARGIN_AVG = 0.10  # mean paired gap to average association (fraction)


@functools.cache
def env_params():
    return jaxsg.make("edge_assoc", **SMALL)


def evaluate(make, policy_params=None, episodes=EPISODES):
    """Mean per-round metrics of ``make(policy_params)`` over ``episodes`` episodes (one jit)."""
    env, params = env_params()

    @functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
    def run(pp):
        policy = make(pp)
        return jax.vmap(lambda k: rollout(env, policy, k, params, env.horizon))(
            jax.random.split(jax.random.PRNGKey(EVAL_KEY), episodes))

    traj = run(policy_params)
    return {k: float(np.mean(traj["metrics"][k])) for k in ("objective_s", "time_cost_s")}


@pytest.mark.parametrize("kwargs", [{"num_envs": 0}, {"gamma": 1.5}, {"tau": -0.1},
                                    {"actor_lr": 0.0}, {"hidden": ()}, {"batch_size": 2.5},
                                    {"warmup_updates": -1}, {"reward_transform": "sqrt"},
                                    {"policy_from": "critic"}, {"preact_l2": -1.0}])
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError, match="Config: field"):
        Config(**kwargs)


def test_shaped_reward_linear_and_log_cost():
    r = np.array([-2.0, -8.0, -900.0], np.float32)
    np.testing.assert_allclose(shaped_reward(r, "linear", 0.5), [-1.0, -4.0, -450.0])
    # −log(cost)·scale: same order as −cost, the heavy tail compressed
    np.testing.assert_allclose(shaped_reward(r, "log_cost", 2.0), -2.0 * np.log(-r), rtol=1e-6)
    # a non-negative reward is not a cost: not finite, never clipped
    assert not np.isfinite(shaped_reward(np.float32(0.5), "log_cost", 1.0))


def test_codec_maps_unit_box_onto_action_bounds():
    env, params = env_params()
    codec = ActionCodec(env, "bs")
    assert codec.dim == 2 * SMALL["num_users"] + SMALL["num_subchannels"]
    lo = codec.decode(-np.ones((2, codec.dim), np.float32), params)
    hi = codec.decode(np.ones((2, codec.dim), np.float32), params)
    np.testing.assert_allclose(lo["batch_frac"], params.batch_frac_min)
    np.testing.assert_allclose(hi["batch_frac"], params.batch_frac_max)
    np.testing.assert_allclose(lo["bid"], 0.0)
    np.testing.assert_allclose(hi["bandwidth"], 1.0)


@functools.cache
def trained():
    """One compile: jit(vmap(train)) over SEEDS training seeds of the learning config."""
    env, params = env_params()
    # backend optimisation level 0: compile ~4x faster on CPU, the run ~3x slower (net win);
    # the measured numbers below are for this compile option.
    train = jax.jit(jax.vmap(make_train(env, LEARN), in_axes=(0, None)),
                    compiler_options={"xla_backend_optimization_level": 0})
    return train(jax.random.split(jax.random.PRNGKey(0), SEEDS), params)


def test_jit_vmap_train_over_seeds():
    env, _ = env_params()
    actor, metrics = trained()
    leaves = jax.tree.leaves(actor)
    assert all(x.shape[:2] == (SEEDS, env.num_bs) for x in leaves)  # seeds × per-BS actors
    n = LEARN.num_updates
    assert metrics["reward"].shape == (SEEDS, n) and metrics["objective_s"].shape == (SEEDS, n)
    assert np.all(np.isfinite(metrics["critic_loss"]))
    # per-BS actors differ (independent init), seeds differ
    w = leaves[0]
    assert not np.allclose(w[0, 0], w[0, 1]) and not np.allclose(w[0], w[1])
    # the rewards are the env's shared reward −T/(1 − θ_G); OU noise decays as configured
    np.testing.assert_allclose(metrics["reward"], -metrics["objective_s"], rtol=1e-5)
    np.testing.assert_allclose(metrics["noise_sigma"][0, [0, -1]],
                               [LEARN.noise_start, LEARN.noise_end], rtol=1e-5)


def test_best_constant_is_the_grid_minimum_and_beats_average():
    """The best constant policy is selected on the evaluation episodes: its score is the
    grid's minimum and, as average association (b = midpoint) is on the grid, no worse."""
    env, params = env_params()
    best = H.best_constant(env, params, jax.random.PRNGKey(EVAL_KEY), EPISODES)
    assert best.scores[best.choice] == min(best.scores.values())
    assert len(best.scores) == len(H.constant_choices(env, params))
    np.testing.assert_allclose(evaluate(lambda _: best)["objective_s"],
                               best.scores[best.choice], rtol=1e-4)
    assert best.scores[best.choice] <= evaluate(lambda _: H.average(env))["objective_s"]


def test_learns_to_beat_best_constant_and_average_association():
    """Objective T/(1 − θ_G) per round on the same EPISODES evaluation episodes (greedy
    actors, one per training seed), paired with the best constant policy (selected on
    those very episodes, which favours it) and with average association.

    Measured (seeds 0-2, 8000 iterations, O0; reward scale 1 from the adapter):
    2.346, 2.415, 2.408 s vs 2.657 s for the best constant (round robin, b = 0.3, uniform
    bandwidth) and 2.831 s for average association (mean gaps 10.1 % and 15.6 %; the search
    reference, an oracle on the round's draws, scores 2.48 s at b = 0.4). With round 1's
    reward scale 0.01 the learner scored 3.13 / 3.03 s, worse than average association.
    Asserted: every seed below the best constant; mean paired gap ≥ MARGIN_CONST to the
    best constant and ≥ MARGIN_AVG to average association."""
    env, params = env_params()
    actor, metrics = trained()
    best = H.best_constant(env, params, jax.random.PRNGKey(EVAL_KEY), EPISODES)
    const = evaluate(lambda _: best)["objective_s"]
    average = evaluate(lambda _: H.average(env))["objective_s"]
    learned = np.array([evaluate(lambda pp: make_policy(env, LEARN, pp),
                                 jax.tree.map(lambda x, i=i: x[i], actor))["objective_s"]
                        for i in range(SEEDS)])
    gap_const, gap_avg = 1.0 - learned / const, 1.0 - learned / average
    print("learned", learned, "best constant", best.choice, const, "average", average)
    assert np.all(gap_const > 0.0), (learned, const)
    assert gap_const.mean() >= MARGIN_CONST, (gap_const, learned, const)
    assert gap_avg.mean() >= MARGIN_AVG, (gap_avg, learned, average)
    # the training curve itself went down (exploration noise included)
    cost = np.asarray(metrics["objective_s"]).mean(0)
    assert cost[-150:].mean() < cost[:150].mean()


# ------------------------------------------------------------------ the default scale
MARGIN_DEFAULT = 0.02  # wanted: mean paired gap to the best constant at the default sizes


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="MADDPG does not yet beat the best constant policy "
                   "at the default sizes (measured 7.72, 7.83, 8.74 s vs 7.29 s); strict: "
                   "this fails as soon as it does, so the marker must then go")
def test_learns_to_beat_best_constant_at_the_default_scale():
    """Default sizes (20 users, 3 BSs, 3 subchannels), the sweeps' learning config
    (``sweeps.experiments.edge_assoc.learn_config``, 3,000 iterations, γ = 0.9): greedy
    actors of SEEDS training seeds vs the best constant policy selected on the same
    EPISODES evaluation episodes (which favours it), paired. The property of
    ``test_learns_to_beat_best_constant_and_average_association`` at the default scale.

    Measured (seeds 0-2, O0): 7.72, 7.83, 8.74 s vs 7.29 s for the best constant
    (cpu-share association, b = 0.5, uniform bandwidth). What was tried is in
    docs/edge_assoc.md ("MADDPG at the default scale")."""
    from sweeps.experiments import edge_assoc as E

    env, params = jaxsg.make("edge_assoc", horizon=10)
    cfg = E.learn_config("default", E.PROPOSED_GAMMA)
    train = jax.jit(jax.vmap(make_train(env, cfg), in_axes=(0, None)),
                    compiler_options={"xla_backend_optimization_level": 0})
    actor, _ = train(jax.random.split(jax.random.PRNGKey(0), SEEDS), params)
    best = H.best_constant(env, params, jax.random.PRNGKey(EVAL_KEY), EPISODES)
    const = best.scores[best.choice]

    @functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
    def run(pp):
        policy = make_policy(env, cfg, pp)
        return jax.vmap(lambda k: rollout(env, policy, k, params, env.horizon))(
            jax.random.split(jax.random.PRNGKey(EVAL_KEY), EPISODES))["metrics"]["objective_s"]

    learned = np.array([float(np.mean(run(jax.tree.map(lambda x, i=i: x[i], actor))))
                        for i in range(SEEDS)])
    gap = 1.0 - learned / const
    print("default scale: learned", learned, "best constant", best.choice, const)
    assert np.all(gap > 0.0), (learned, const)
    assert gap.mean() >= MARGIN_DEFAULT, (gap, learned, const)
