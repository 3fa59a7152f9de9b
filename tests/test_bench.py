"""``python -m sweeps.bench``: a tiny end-to-end run and its JSON (no wall-clock asserts).

The run uses small sgin sizes and ``--fast-compile`` so its two AOT compiles
stay within a few seconds each on a 2-core CPU.
"""

from __future__ import annotations

import json
import math

import jax
import numpy as np
import pytest

import jaxsg
from sweeps import bench

BATCHES = (1, 4)
SMALL = ["num_mbs=2", "users_per_mbs=3", "num_leo=2", "num_channels=2"]


def _positive_finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    argv = ["--scenario", "sgin", "--batches", ",".join(map(str, BATCHES)), "--steps", "3"]
    argv += ["--repeats", "1"]
    argv += ["--ref-seconds", "0.2", "--fast-compile", "--json", str(path)]
    argv += ["--sections", "env"]
    for item in SMALL:
        argv += ["--set", item]
    returned = bench.main(argv)
    return json.loads(path.read_text()), returned


def test_json_rows_reference_ratios_device(bench_json, capsys):
    data, returned = bench_json
    assert data["scenario"] == "sgin"
    assert data["env_kwargs"] == {"num_mbs": 2, "users_per_mbs": 3, "num_leo": 2, "num_channels": 2}
    dev = data["device"]
    assert dev["device_kind"] and dev["platform"] and dev["backend"] and dev["jax_version"]
    assert dev["cpu_count"] >= 1
    assert data["config"]["fast_compile"] is True

    env = data["env"]
    # followers only: N·M = 2·3, the leader is not counted
    assert env["agents_per_episode"] == 6
    assert env["counted_classes"] == ["follower"]
    assert "leader is not counted" in env["definition"]

    ref = env["reference"]
    assert _positive_finite(ref["agent_steps_per_s"])
    assert _positive_finite(ref["agent_steps_per_s_best"])
    assert ref["episode_steps"] >= ref["chunks"] == 5

    rows = env["jax"]
    assert [r["batch"] for r in rows] == list(BATCHES)
    for r in rows:
        assert r["steps"] == 3
        assert r["agent_steps_per_call"] == r["batch"] * 3 * 6
        assert len(r["call_s"]) == 1
        for key in ("agent_steps_per_s", "agent_steps_per_s_best", "compile_s", "call_s_median"):
            assert _positive_finite(r[key]), (key, r[key])
        assert _positive_finite(r["ratio_vs_numpy"])
        assert r["ratio_vs_numpy"] == pytest.approx(
            r["agent_steps_per_s"] / ref["agent_steps_per_s"]
        )
        assert r["checksums_finite"] is True
    # main() returns the same document it wrote
    assert returned["env"]["jax"][0]["batch"] == rows[0]["batch"]


def test_blocks_step_the_same_episodes_as_one_batch():
    """``--block``: stepping 4 episodes in blocks of 2 (and of 3: a remainder block) gives
    the episodes the plain batched scan gives."""
    env, params = jaxsg.make("sgin", num_mbs=2, users_per_mbs=3, num_leo=2, num_channels=2)
    policy = jaxsg.random_policy(env)
    obs, state = bench.broadcast_batch(env.reset(jax.random.key(0), params), 4)
    keys = jax.random.split(jax.random.key(1), 4)
    want = jax.jit(bench.make_run(env, params, policy, 3))(keys, state, obs)
    for block in (2, 3):
        got = jax.jit(bench.make_run(env, params, policy, 3, block))(keys, state, obs)
        for w, g in zip(jax.tree.leaves(want[:2]), jax.tree.leaves(got[:2])):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(float(got[2]), float(want[2]), rtol=1e-4)


def test_steps_for_caps_large_batches():
    assert bench.steps_for(1, 50, 65536) == 50
    assert bench.steps_for(1024, 50, 65536) == 50
    assert bench.steps_for(4096, 50, 65536) == 16
    assert bench.steps_for(16384, 50, 65536) == 4
    assert bench.steps_for(10**6, 50, 65536) == 1


def test_numpy_sample_matches_action_spaces():
    env, params = jaxsg.make("sgin")
    rng = np.random.default_rng(0)
    follower = bench.numpy_sample(env.action_space("follower", params), rng)
    n = env.num_followers
    assert set(follower) == {"offload", "drop", "leo", "channel", "cpu", "block_mbit"}
    assert follower["leo"].shape == (n,) and follower["leo"].max() < env.num_leo
    assert np.all((follower["cpu"] >= 0.0) & (follower["cpu"] <= 1.0))
    leader = bench.numpy_sample(env.action_space("leader", params), rng)
    assert leader.shape == (1, n) and np.all((leader >= 0) & (leader <= 10))


@pytest.mark.parametrize(
    "argv",
    [
        ["--batches", "0"],
        ["--batches", "a,b"],
        ["--scenario", "sgin", "--set", "num_mbs=0"],
        ["--scenario", "sgin", "--set", "nonsense"],
        ["--set", "num_mbs=2"],  # --set needs one scenario
        ["--sections", "nope"],
        ["--scenario", "nope"],
        ["--block", "-1"],
    ],
)
def test_bad_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2


def test_train_section_reports_both_learners(tmp_path):
    path = tmp_path / "train.json"
    argv = ["--scenario", "sgin", "--sections", "train", "--train-seeds", "1,2",
            "--train-envs", "2", "--train-max-batch", "2", "--train-updates", "2",
            "--train-repeats", "1", "--fast-compile", "--json", str(path)]
    for item in ("num_mbs=2", "users_per_mbs=3", "num_leo=2", "num_channels=3"):
        argv += ["--set", item]
    doc = bench.main(argv)
    rows = doc["train"]
    assert {r["algorithm"] for r in rows} == {"madfrl", "mappo"}
    # only (envs, seeds) pairs with envs × seeds ≤ --train-max-batch: 2 × 2 is skipped
    assert sorted((r["envs_per_seed"], r["seeds"]) for r in rows) == [(2, 1), (2, 1)]
    for r in rows:
        assert math.isfinite(r["agent_steps_per_s"]) and r["agent_steps_per_s"] > 0
        assert r["fraction_of_env_only"] == pytest.approx(
            r["agent_steps_per_s"] / r["env_only_agent_steps_per_s"])
        assert r["cpu_per_wall"] > 0  # shows when the training rows ran on a shared CPU


def test_roofline_fraction_from_cost_and_peaks():
    peak = {"peak_flops_per_s": 100e9, "peak_bytes_per_s": 10e9}
    # intensity 1 flop/byte: memory roof 10 GFLOP/s < compute roof; achieved 5 GFLOP/s
    row = {"xla_flops_per_call": 5e9, "xla_bytes_per_call": 5e9, "call_s_median": 1.0}
    r = bench.roofline(row, peak)
    assert r["bound"] == "memory"
    assert r["roofline_fraction"] == pytest.approx(0.5)
    # intensity 100: compute roof; achieved 50 GFLOP/s
    row = {"xla_flops_per_call": 100e9, "xla_bytes_per_call": 1e9, "call_s_median": 2.0}
    r = bench.roofline(row, peak)
    assert r["bound"] == "compute"
    assert r["roofline_fraction"] == pytest.approx(0.5)
    assert bench.roofline({"call_s_median": 1.0}, peak) == {}


def test_other_scenario_with_peak_and_roofline(tmp_path):
    path = tmp_path / "dt.json"
    doc = bench.main(["--scenario", "dt_deploy", "--sections", "peak,env", "--batches", "2",
                      "--steps", "2", "--repeats", "1", "--ref-seconds", "0.1",
                      "--fast-compile", "--json", str(path)])
    assert _positive_finite(doc["peak"]["peak_flops_per_s"])
    assert _positive_finite(doc["peak"]["peak_bytes_per_s"])
    env = doc["scenarios"]["dt_deploy"]["env"]
    row = env["jax"][0]
    assert env["peak_batch"] == 2
    assert _positive_finite(row["xla_flops_per_call"])
    assert 0 < row["roofline_fraction"]
    assert _positive_finite(env["reference"]["agent_steps_per_s"])
    assert json.loads(path.read_text())["scenarios"]["dt_deploy"]["env"]["peak_batch"] == 2


@pytest.mark.parametrize("size", [1, 7, 864])
def test_sgin_fast_uniform_draws_are_jax_threefry_counter_mode(size):
    """The sgin step's cheaper draws (sweeps.bench measures them) are exactly JAX's
    threefry-2x32 over counters 0 … size−1, turned into floats as
    ``jax.random.uniform`` does: same generator, same distribution, in [0, 1)."""
    import jax
    import jax.extend.random
    import jax.numpy as jnp

    from jaxsg.rng import uniform_01

    key = jax.random.key(size)
    words = jax.extend.random.threefry_2x32(
        jax.random.key_data(key), jnp.arange(size, dtype=jnp.uint32))
    want = jax.lax.bitcast_convert_type((words >> 9) | 0x3F800000, jnp.float32) - 1.0
    got = uniform_01(key, (size,))
    np.testing.assert_array_equal(got, want)
    assert got.dtype == jnp.float32 and np.all((got >= 0) & (got < 1))
    other = jax.random.key(0, impl="rbg")  # other key implementations: jax.random.uniform
    np.testing.assert_array_equal(uniform_01(other, (size,)),
                                  jax.random.uniform(other, (size,)))
    if size == 864:  # a uniform sample: mean 1/2, variance 1/12 within 4 standard errors
        assert abs(float(got.mean()) - 0.5) < 4 * (1 / 12 / size) ** 0.5
