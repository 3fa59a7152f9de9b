"""dt_deploy live-regime criteria (``docs/dt_deploy.md``, "Live regime (round 2 decision)").

At the defaults, 20 users, 6 episodes × 20 steps = 120 steps (common random numbers: RD,
sequential greedy and the exact optimum see the same exogenous draws), with every gap in
the objective the optimum minimises, α·L_sum + β·ς·m:

1. the exact optimum places ≥ 10 % of users (time average) on each layer;
2. the optimum beats sequential greedy by ≥ 3 %;
3. RD is ≥ 2× the optimum;
4. the optimum's per-user mean latency is in [0.5, 5] s.

The measured values are tabled in the ``jaxsg.scenarios.dt_deploy`` docstring; the
command that prints them is ``python tests/test_dt_deploy_regime.py``.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

import jaxsg
from agents.heuristics import dt_deploy as H

NUM_EPISODES = 6
SEED = 2024


@functools.cache
def measure(num_episodes: int = NUM_EPISODES, seed: int = SEED) -> dict:
    env, params = jaxsg.make("dt_deploy")
    rd, seq = H.random_deploy(env), H.sequential_greedy(env)

    def episode(key):
        k_reset, k_run = jax.random.split(key)
        _, s0 = env.reset(k_reset, params)

        def body(carry, k):
            s_rd, s_seq = carry
            k_act, k_step = jax.random.split(k)
            outs = []
            for pol, s in ((rd, s_rd), (seq, s_seq)):
                out = env.outcome(s, pol(k_act, None, s, params)["user"], params)
                outs.append(out)
            nxt = tuple(
                env.step_env(k_step, s, {"user": o["action"]}, params)[1].replace(
                    step=s.step + 1)
                for s, o in zip((s_rd, s_seq), outs))
            ys = {name: {"objective": -o["reward"], "latency_sum_s": o["latency_sum_s"],
                         "counts": o["counts"]} for name, o in zip(("rd", "seq"), outs)}
            return nxt, (s_seq, ys)

        _, (states, ys) = jax.lax.scan(body, (s0, s0), jax.random.split(k_run, env.horizon))
        return states, ys

    keys = jax.random.split(jax.random.PRNGKey(seed), num_episodes)
    states, ys = jax.device_get(jax.jit(jax.vmap(episode))(keys))
    flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), states)
    n = flat.step.shape[0]
    opt_actions, opt_values = [], []
    for k in range(n):
        action, value = H.optimal_action(env, jax.tree.map(lambda x, k=k: x[k], flat), params)
        opt_actions.append(action)
        opt_values.append(value)
    out = jax.jit(jax.vmap(lambda s, a: env.outcome(s, a, params)))(
        flat, jnp.asarray(np.stack(opt_actions)))
    counts = np.asarray(out["counts"])
    i_n = env.num_users
    shares = counts.sum(0) / (n * i_n)
    opt = float(np.mean(opt_values))
    return {
        "steps": n,
        "share_local": float(shares[0]),
        "share_end": float(shares[1:-1].sum()),
        "share_cloud": float(shares[-1]),
        "opt_objective": opt,
        "opt_objective_check": float(-np.mean(np.asarray(out["reward"]))),
        "opt_latency_mean_s": float(np.mean(np.asarray(out["latency_sum_s"]))) / i_n,
        "seq_over_opt": float(np.mean(ys["seq"]["objective"])) / opt,
        "rd_over_opt": float(np.mean(ys["rd"]["objective"])) / opt,
        "seq_latency_mean_s": float(np.mean(ys["seq"]["latency_sum_s"])) / i_n,
        "rd_latency_mean_s": float(np.mean(ys["rd"]["latency_sum_s"])) / i_n,
        "seq_shares": (ys["seq"]["counts"].sum((0, 1)) / (n * i_n)).round(3).tolist(),
    }


def test_optimum_value_is_its_objective():
    m = measure()
    assert m["steps"] >= 100
    np.testing.assert_allclose(m["opt_objective"], m["opt_objective_check"], rtol=1e-4)


def test_criterion_1_optimum_uses_every_layer():
    m = measure()
    for layer in ("local", "end", "cloud"):
        assert m[f"share_{layer}"] >= 0.10, (layer, m)


def test_criterion_2_optimum_beats_sequential_greedy_by_3_percent():
    m = measure()
    assert m["seq_over_opt"] >= 1.03, m


def test_criterion_3_random_deployment_is_twice_the_optimum():
    m = measure()
    assert m["rd_over_opt"] >= 2.0, m


def test_criterion_4_optimum_per_user_latency():
    m = measure()
    assert 0.5 <= m["opt_latency_mean_s"] <= 5.0, m


if __name__ == "__main__":
    for k, v in measure().items():
        print(f"{k:22s} {v}")
