"""The evaluation framework: methods registry, axis batch builder, report helpers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsg
from sweeps import methods, report
from sweeps.figures import host_rollout
from sweeps.sharding import axis_batch, episode_keys, run_axis
from sweeps.stats import mean_ci


def test_registry_kinds_and_learner_budgets():
    assert methods.get("sgin", "marto").kind == "heuristic"
    assert methods.get("dt_deploy", "optimal").kind == "reference"
    assert not methods.get("dt_deploy", "optimal").jittable
    for scenario in ("sgin", "dt_deploy", "spectrum", "edge_assoc"):
        learners = methods.names(scenario, "learner")
        assert learners
        for m in learners:
            assert methods.train_seeds(scenario, m, "default") >= 3
            assert methods.train_seeds(scenario, m, "paper") >= 5
    with pytest.raises(KeyError, match="known"):
        methods.get("sgin", "nope")
    with pytest.raises(ValueError, match="learner"):
        methods.policy("sgin", "mappo", None)
    with pytest.raises(ValueError, match="kind"):
        methods.Method("x", "y", "oracle", "Y")


def test_axis_batch_uses_common_random_numbers_and_per_seed_trees():
    _, params = jaxsg.make("sgin", num_mbs=2, users_per_mbs=3, num_leo=2, num_channels=3)
    batch, index = axis_batch(params, [{"price": 2.0}, {"price": 6.0}], seeds=2, episodes=3,
                              seed=4, per_seed={"w": np.array([10.0, 20.0])})
    assert len(index) == 12 and index[0] == (0, 0, 0) and index[-1] == (1, 1, 2)
    keys = episode_keys(4, 2, 3)
    for i, (p, s, e) in enumerate(index):
        np.testing.assert_array_equal(batch["key"][i], keys[s, e])  # same key at every point
        assert batch["w"][i] == (10.0, 20.0)[s]
        assert batch["params"].price[i] == (2.0, 6.0)[p]
    with pytest.raises(ValueError, match="per_seed"):
        axis_batch(params, [{}], seeds=3, per_seed={"w": np.zeros(2)})
    with pytest.raises(ValueError, match="seeds and episodes"):
        axis_batch(params, [{}], seeds=0)


def test_run_axis_is_run_batched_over_the_axis():
    _, params = jaxsg.make("sgin", num_mbs=2, users_per_mbs=3, num_leo=2, num_channels=3)
    out, index = run_axis(lambda e: {"p": e["params"].price * 2.0 + 0 * e["key"][0]}, params,
                          [{"price": 1.0}, {"price": 3.0}], seeds=2)
    np.testing.assert_allclose(out["p"], [2.0, 2.0, 6.0, 6.0])
    assert [p for p, _, _ in index] == [0, 0, 1, 1]


def test_host_rollout_replays_the_jitted_rollouts_keys():
    from jaxsg.wrappers import rollout

    env, params = jaxsg.make("dt_deploy", num_users=4, num_end_devices=2, horizon=4)
    policy = methods.policy("dt_deploy", "greedy", env)
    key = jax.random.PRNGKey(3)
    jitted = jax.jit(lambda k: rollout(env, policy, k, params, 6))(key)
    host = host_rollout(env, policy, key, params, 6)
    for k, v in jitted["metrics"].items():
        np.testing.assert_allclose(host["metrics"][k], np.asarray(v), rtol=1e-5, err_msg=k)


def test_value_decomp_policy_is_a_recurrent_policy_through_rollout():
    from agents import value_decomp as vd
    from jaxsg.policy import RecurrentPolicy
    from jaxsg.wrappers import rollout

    env, params = jaxsg.make("dt_deploy", num_users=4, num_end_devices=2, horizon=3)
    cfg = vd.Config(mixer="vdn", hidden=8, fc=8)
    agent = vd.init_agent_params(env, cfg, jax.random.PRNGKey(0))
    policy = methods.learned_policy("dt_deploy", "proposed", env, cfg, agent)
    assert isinstance(policy, RecurrentPolicy)
    traj = jax.jit(lambda k: rollout(env, policy, k, params, 7))(jax.random.PRNGKey(1))
    assert traj["reward"]["user"].shape == (7, 4)
    assert bool(jnp.all(jnp.isfinite(traj["metrics"]["latency_sum_s"])))


def test_ci_table_and_figures_in_png_and_pdf(tmp_path):
    recs = [{"series": s, "x": x, "seed": k, "y_s": x + k + (s == "b")}
            for s in ("a", "b") for x in (1.0, 2.0) for k in range(3)]
    table = report.ci_table(recs, "y_s", series_key="series", x_key="x", x_label="x (s)")
    assert table.count("(n = 3)") == 4 and "series \\ x (s)" in table
    curves = report.series_estimates(recs, "y_s", series_key="series", x_key="x")
    paths = report.line_figure("t", curves, title="t", xlabel="x (s)", ylabel="y (s)",
                               fig_dir=tmp_path, hlines=[("ref", mean_ci([1.0, 2.0]))])
    assert sorted(p.suffix for p in paths) == [".pdf", ".png"]
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)


def test_report_starts_with_the_claims_summary(tmp_path):
    from sweeps.experiments import Experiment, RunContext
    from sweeps.grid import ExperimentResult
    from sweeps.stats import beats_verdict

    def claims(records):
        v = beats_verdict(records, "y_s", "a", "b", higher_is_better=True)
        return [report.Claim("toy", "Fig. 1", "a beats b", v, "a > b")]

    exp = Experiment("toy_fig", "toy", "Toy", cells=lambda s: [], run_cell=None,
                     report=lambda r: "text", claims=claims)
    recs = [{"method": m, "seed": s, "y_s": float(s + (m == "a") * 10)}
            for m in ("a", "b") for s in range(3)]
    res = ExperimentResult(exp, records=recs, computed=1, report_text="body",
                           figures=[tmp_path / "figures" / "toy.png",
                                    tmp_path / "figures" / "toy.pdf"])
    path = report.write_report(tmp_path / "report.md", RunContext("smoke", 0, tmp_path), [res])
    text = path.read_text()
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections[0] == "## Claims summary"
    assert "| toy | Fig. 1 | a beats b | **reproduced** |" in text
    assert "](figures/toy.png) ([PDF](figures/toy.pdf))" in text
    assert text.index("## Claims summary") < text.index("## Toy")


def test_every_compared_method_is_one_registry_entry_built_by_agents():
    """One registry: each heuristic / reference is an ``agents.heuristics`` policy, each
    learner names a module with
    ``make_policy``; the references experiments compare are entries, not side tables."""
    import importlib

    from agents import heuristics

    for scenario in heuristics.SCENARIOS:
        table = heuristics.policies(scenario)
        for name in methods.names(scenario):
            m = methods.get(scenario, name)
            if m.kind == "learner":
                assert callable(importlib.import_module(f"agents.{m.module}").make_policy)
            else:
                assert name in table, name
        if "best_constant" in table:
            assert methods.get(scenario, "best_constant").kind == "reference"
    env, _ = jaxsg.make("dt_deploy", num_users=4, num_end_devices=2, horizon=3)
    assert callable(methods.policy("dt_deploy", "sequential_greedy", env))
    with pytest.raises(ValueError, match="module"):
        methods.Method("x", "y", "learner", "Y", train_seeds={s: 3 for s in methods.SCALES})
