"""dt_deploy experiments: the computed report lines (gap target, tuning choice) judged on
synthetic records both ways, and the learner configs' shared budget and normalisation."""

import pytest

from sweeps.experiments import dt_deploy as X


def _recs(method, latencies, **extra):
    return [{"method": method, "seed": s, "episode": 0, "latency_sum_s": v, **extra}
            for s, v in enumerate(latencies)]


OPT = [10.0, 11.0, 9.0]


def test_gap_target_within_and_not_within():
    near = _recs("optimal", OPT) + _recs("proposed", [10.3, 11.4, 9.2]) + _recs(
        "iql", [14.0, 15.0, 13.0])
    line = X.gap_target_line(near)
    assert "proposed (VDN)" in line and ": within the target" in line
    far = _recs("optimal", OPT) + _recs("proposed", [13.0, 14.5, 11.8])
    assert "not within the target" in X.gap_target_line(far)
    assert "undecided" in X.gap_target_line(_recs("optimal", OPT) + _recs("iql", [10, 13, 9]))
    assert "not run" in X.gap_target_line(_recs("optimal", OPT))


def test_relative_gap_is_paired_per_seed():
    recs = _recs("optimal", OPT) + _recs("qmix", [11.0, 12.1, 9.9])
    est = X.relative_gap(recs, "qmix")
    assert est.n == 3 and est.mean == pytest.approx(0.1, rel=1e-6)
    assert est.half_width == pytest.approx(0.0, abs=1e-9)


def _tune(method, rewards_by_point):
    rows = []
    for g, (hp, rewards) in enumerate(rewards_by_point):
        rows += [{"method": method, "seed": s, "grid_point": g, **hp,
                  "eval_reward_per_step": r} for s, r in enumerate(rewards)]
    return rows


def test_tune_choice_and_agreement_both_ways():
    a = dict(lr=1e-3, eps_decay_fraction=0.3, target_update_interval=2)
    b = dict(lr=3e-3, eps_decay_fraction=0.6, target_update_interval=8)
    recs = _tune("proposed", [(a, [-10.0, -11.0]), (b, [-9.0, -9.5])])
    assert X.tune_choice(recs, "proposed") == b
    assert "(the same)" in X.tune_agrees(recs, "proposed", tuned=b)
    assert "DIFFERENT" in X.tune_agrees(recs, "proposed", tuned=a)
    assert X.tune_choice(recs, "iql") is None


def test_learners_share_budget_and_reward_normalisation():
    scale = X.SCALES["default"]
    cfgs = {m: X.learner_config(m, scale, scale["users"]) for m in X.LEARNED}
    budget = {(c.num_envs, c.num_updates, c.updates_per_iter, c.batch_episodes,
               c.reward_scale, c.gamma, c.hidden) for c in cfgs.values()}
    assert len(budget) == 1 and next(iter(budget))[4] is None  # the adapter's 1/I
    for m, c in cfgs.items():
        assert {k: getattr(c, k) for k in X.HP_KEYS} == X.TUNED[m]
    assert scale["episodes"] >= 16 and scale["seeds"] >= 5
    assert min(scale["fig6_users"]) == 18 and max(scale["fig6_users"]) == 24
