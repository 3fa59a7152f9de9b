"""Behaviour pin (issue 12 item 7): the numbers of every heuristic and reference of
``agents.heuristics`` at fixed keys on small configs, computed on main before the
learner refactor moved code. A refactor must leave them unchanged (rtol 1e-5).

Every policy comes from ``agents.heuristics.get(scenario, name, env)`` with its default
arguments (so the selections made by ``best_constant``/``stackelberg`` at build time are
pinned too) and runs through ``jaxsg.wrappers.rollout`` for two episodes from
``PRNGKey(1)``. One compiled program per scenario: the rollout is vmapped over a
``lax.switch`` index into the scenario's policies. A change that is *meant* to move these
numbers regenerates the table with ``python tests/test_regression_numbers.py`` and says
why in its commit.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsg
from agents import heuristics
from jaxsg.wrappers import rollout

SIZES = {
    "sgin": dict(num_mbs=1, users_per_mbs=3, num_leo=2, num_channels=2, horizon=4),
    "dt_deploy": dict(num_users=3, num_end_devices=1, horizon=3),
    "spectrum": dict(num_satellites=2, users_per_satellite=4, num_channels=2,
                     slots_per_channel=2, num_price_levels=3, num_power_levels=2, horizon=4),
    "edge_assoc": dict(num_bs=3, num_users=6, num_producers=2, horizon=3),
}
# two info metrics per scenario (mean over the steps), beside the mean reward per class
METRICS = {
    "sgin": ("leader_profit", "served_mbit"),
    "dt_deploy": ("latency_sum_s", "capacity_overflow"),
    "spectrum": ("revenue_total", "leases_total"),
    "edge_assoc": ("objective_s", "theta_g"),
}


def numbers(scenario: str) -> dict:
    """``{policy name: {"reward/<class>" | metric: mean over 2 episodes}}``."""
    env, params = jaxsg.make(scenario, **SIZES[scenario])
    table = heuristics.policies(scenario)
    # host-side references (dt_deploy's exact optimum) cannot sit in a lax.switch; the
    # optimum is checked against brute force in tests/test_dt_deploy.py
    names = sorted(n for n, f in table.items() if getattr(f, "jittable", True))
    policies = [heuristics.get(scenario, name, env) for name in names]

    def run(index):
        def policy(key, obs, state, p):
            return jax.lax.switch(index, policies, key, obs, state, p)

        traj = rollout(env, policy, jax.random.PRNGKey(1), params, 2 * env.horizon)
        out = {f"reward/{c}": jnp.mean(r) for c, r in traj["reward"].items()}
        out.update({m: jnp.mean(traj["metrics"][m]) for m in METRICS[scenario]})
        return out

    table = jax.jit(jax.vmap(run))(jnp.arange(len(names)))
    return {name: {k: float(v[i]) for k, v in table.items()} for i, name in enumerate(names)}


# computed on main at dbbbf46 (before the refactor), by the generator below; the sgin rows
# regenerated after the merge of `speed` (ef49f29 draws the slot with whole threefry blocks:
# the same distribution, another random stream; dt_deploy, spectrum, edge_assoc unchanged);
# sgin `marto` and dt_deploy `rd` regenerated when `jaxsg.spaces` moved its sampling to the
# fused `jaxsg.rng.uniform_01` draw (same distribution, another stream; nothing else moved)
EXPECTED = {'dt_deploy': {'best_constant': {'capacity_overflow': 0.0,
                                 'latency_sum_s': 1.0387390851974487,
                                 'reward/user': -0.997117280960083},
               'constant': {'capacity_overflow': 0.0,
                            'latency_sum_s': 3.0671186447143555,
                            'reward/user': -2.1469826698303223},
               'greedy': {'capacity_overflow': 0.0,
                          'latency_sum_s': 1.0284428596496582,
                          'reward/user': -0.9749099016189575},
               'rd': {'capacity_overflow': 0.0,
                      'latency_sum_s': 2.2768588066101074,
                      'reward/user': -1.7438011169433594},
               'sequential_greedy': {'capacity_overflow': 0.0,
                                     'latency_sum_s': 1.0284428596496582,
                                     'reward/user': -0.9749099016189575}},
 'edge_assoc': {'average': {'objective_s': 2.3735203742980957,
                            'reward/bs': -2.3735198974609375,
                            'theta_g': 0.25363993644714355},
                'best_constant': {'objective_s': 2.32588529586792,
                                  'reward/bs': -2.325885057449341,
                                  'theta_g': 0.34095537662506104},
                'constant': {'objective_s': 2.3735203742980957,
                             'reward/bs': -2.3735198974609375,
                             'theta_g': 0.25363993644714355},
                'full_data': {'objective_s': 2.8917722702026367,
                              'reward/bs': -2.891772508621216,
                              'theta_g': 0.13982968032360077},
                'greedy': {'objective_s': 2.171643018722534,
                           'reward/bs': -2.171642780303955,
                           'theta_g': 0.25363993644714355},
                'orthogonal': {'objective_s': 2.37579345703125,
                               'reward/bs': -2.375792980194092,
                               'theta_g': 0.25363993644714355},
                'random': {'objective_s': 2.7617454528808594,
                           'reward/bs': -2.7617452144622803,
                           'theta_g': 0.25363993644714355},
                'search': {'objective_s': 2.1116580963134766,
                           'reward/bs': -2.1116578578948975,
                           'theta_g': 0.25363993644714355}},
 'sgin': {'best_constant': {'leader_profit': 0.0,
                            'reward/follower': -25.99964714050293,
                            'reward/leader': 0.0,
                            'served_mbit': 4.77513313293457},
          'best_response': {'leader_profit': 0.0,
                            'reward/follower': -25.54131317138672,
                            'reward/leader': 0.0,
                            'served_mbit': 4.77513313293457},
          'magcs': {'leader_profit': 48.599998474121094,
                    'reward/follower': -165.77578735351562,
                    'reward/leader': 48.599998474121094,
                    'served_mbit': 12.618569374084473},
          'mamcc': {'leader_profit': 48.599998474121094,
                    'reward/follower': -165.77578735351562,
                    'reward/leader': 48.599998474121094,
                    'served_mbit': 12.618569374084473},
          'marto': {'leader_profit': 24.360017776489258,
                    'reward/follower': -183.536376953125,
                    'reward/leader': 24.360017776489258,
                    'served_mbit': 5.516366958618164},
          'stackelberg': {'leader_profit': 6.123385429382324,
                          'reward/follower': -15.083711624145508,
                          'reward/leader': 6.123385429382324,
                          'served_mbit': 9.592921257019043}},
 'spectrum': {'average_budget': {'leases_total': 2.125,
                                 'revenue_total': 7.050000190734863,
                                 'reward/satellite': 3.5250000953674316},
              'average_budget_fair': {'leases_total': 2.125,
                                      'revenue_total': 7.050000190734863,
                                      'reward/satellite': 3.5250000953674316},
              'best_constant': {'leases_total': 2.25,
                                'revenue_total': 7.087500095367432,
                                'reward/satellite': 3.543750047683716},
              'myopic_optimal': {'leases_total': 3.875,
                                 'revenue_total': 7.931250095367432,
                                 'reward/satellite': 3.965625047683716}}}


@pytest.mark.parametrize("scenario", sorted(SIZES))
def test_heuristic_and_reference_numbers_are_unchanged(scenario):
    got = numbers(scenario)
    assert sorted(got) == sorted(EXPECTED[scenario]), "policy set changed"
    for name, expected in EXPECTED[scenario].items():
        assert sorted(got[name]) == sorted(expected), name
        for k, v in expected.items():
            np.testing.assert_allclose(got[name][k], v, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{scenario}/{name}/{k}")


if __name__ == "__main__":  # regenerate the pinned table
    import pprint

    import sweeps.platform

    sweeps.platform.configure_cpu_runtime()
    pprint.pprint({s: numbers(s) for s in sorted(SIZES)}, width=100, sort_dicts=True)
