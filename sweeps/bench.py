"""``python -m sweeps.bench``: simulator throughput, JAX vs the NumPy reference.

    python -m sweeps.bench                                  # all four scenarios, 1 … 16384 episodes
    python -m sweeps.bench --scenario sgin --sections peak,env
    python -m sweeps.bench --batches 1,64,4096 --steps 100 --repeats 10
    python -m sweeps.bench --json results/bench.json        # also write JSON
    python -m sweeps.bench --json -                         # JSON on stdout, table on stderr
    python -m sweeps.bench --set num_mbs=8 --set users_per_mbs=16

Definitions (printed in the header as well)
-------------------------------------------
* **agent-step**: one agent acting in one environment step. Only the agent
  classes listed as *counted* for the scenario are counted; for ``sgin`` that
  is the N·M follower DTs, the leader (one per episode) is **not** counted.
  agent-steps of one timed call = parallel episodes × scan steps × counted
  agents per episode.
* **JAX**: ``run(keys, state, obs) -> (state, obs, checksum)`` does ``steps``
  env steps for a batch of episodes inside one ``lax.scan``; each step splits
  every episode's key, samples :func:`jaxsg.random_policy` (uniform, respecting
  ``avail_actions``) and calls ``env.step`` (with its auto-reset), both
  ``vmap``-ed over the batch. So random-policy action sampling and key
  splitting are *inside* the timed loop. The checksum sums every reward, the
  done flags and every scalar metric of ``info``, so nothing the step returns
  is dead code. ``run`` is compiled ahead of time
  (``jax.jit(run).lower(...).compile()``; "compile s" = trace + lower + XLA
  compile, excluded from the throughput), called once to warm up, then timed
  ``--repeats`` times around ``jax.block_until_ready``, each call continuing
  from the previous call's state; the table gives the median call
  (agent-steps/s) and the best call. The batch starts from one
  ``env.reset`` broadcast to every episode (each episode has its own key, so
  they diverge from the first step; this saves compiling a batched reset per
  batch size).
* **NumPy**: the scenario's plain-NumPy reference, one episode at a time
  (float64, explicit loops), random actions drawn with ``numpy`` uniformly
  over the same action spaces (sampling inside the timed loop too), stepped
  for ``--ref-seconds`` in ``--ref-chunks`` chunks; median and best chunk.
  Its agent-steps/s does not depend on the batch size, so it is one row.
* **ratio** = JAX agent-steps/s ÷ NumPy agent-steps/s, both measured in this
  run (median ÷ median; "best" = best ÷ best).
* **cpu/wall** = process CPU time ÷ wall time over the timed calls (all
  threads). Well below 1 means other processes had the CPU; above 1, XLA used
  more than one core.

Large batches: a timed call does ``steps = min(--steps, max(1, --max-env-steps
// batch))`` steps, i.e. the scan is shortened so that batch × steps stays
under ``--max-env-steps`` (default 65536 episode-steps ≈ 3 M agent-steps for
sgin's 48 followers), which keeps the default run to a few minutes on a 2-core
CPU and memory modest (the default run peaks at about 2 GB RSS). The
``steps`` column shows the value used. Throughput is per agent-step, so rows
with different scan lengths compare directly.

* **roofline**: XLA's cost analysis of the compiled call (flops and bytes
  accessed; a while-loop body is counted once, so it is multiplied by the scan
  length) over the measured call time gives achieved FLOP/s and bytes/s; the
  ``peak`` section measures this device's roofs (a float32 matmul's FLOP/s and
  a streaming kernel's bytes/s). roofline = achieved FLOP/s ÷ min(peak FLOP/s,
  intensity × peak bytes/s). Each scenario ends with the batch where its
  throughput peaks.

Output: a table (header: jax version, backend, device kind and count, CPU
count, load average) and, with ``--json PATH``, a JSON document (``-`` for
stdout, the table then goes to stderr). Exit status 0, or 2 for bad arguments.

Extension point: :data:`SECTIONS` lists the benchmark sections run in order
(``--sections``); each takes ``(args, scenario, out)`` and adds its results to
``out`` (the JSON document) and its lines to ``out["_lines"]``. Training
throughput (MADFRL / MAPPO updates per second) goes in as a new section.
New scenarios go in :data:`SCENARIOS`: ``jaxsg.make`` kwargs, a reference
constructor ``(env, params) -> reference`` with ``reset(rng)`` /
``step(action, rng)``, and the agent classes counted.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

import jaxsg
from jaxsg import spaces
from jaxsg.reference.dt_deploy import DtDeployReference
from jaxsg.reference.edge_assoc import EdgeAssocReference
from jaxsg.reference.sgin import SginReference
from sweeps.platform import configure_cpu_runtime

__all__ = ["SCENARIOS", "SECTIONS", "Scenario", "build_parser", "main", "numpy_sample"]

DEFAULT_BATCHES = (1, 64, 1024, 4096, 16384)
#: ``--block`` on CPU: 1,024 sgin episodes' state (≈ 9 MB of channel gains) fits in the
#: 32 MB L3 cache this project is benchmarked on; 16,384 episodes' state does not
CPU_BLOCK = 1024


# ------------------------------------------------------------------ registry
@dataclass(frozen=True)
class Scenario:
    """How to benchmark one registered env."""

    make_kwargs: dict = field(default_factory=dict)
    #: ``(env, params) -> reference`` with ``reset(rng)`` and ``step(action, rng)``.
    reference: Callable[[Any, Any], Any] | None = None
    #: agent classes counted in an agent-step (others, e.g. a single leader, are not).
    counted_classes: tuple[str, ...] = ()
    note: str = ""


SCENARIOS: dict[str, Scenario] = {
    "sgin": Scenario(
        make_kwargs={"num_mbs": 4, "users_per_mbs": 12, "num_leo": 4, "num_channels": 12},
        reference=SginReference.from_env,
        counted_classes=("follower",),
        note="agent-step = one follower DT step (N·M per episode-step); the leader is not counted",
    ),
    "dt_deploy": Scenario(
        reference=DtDeployReference.from_env,
        counted_classes=("user",),
        note="agent-step = one user's deployment decision",
    ),
    "spectrum": Scenario(
        reference=None,  # its reference steps on caller-supplied draws (the test oracle form)
        counted_classes=("satellite",),
        note="agent-step = one satellite's pricing step; no NumPy row (the reference takes "
        "shared draws, not an rng)",
    ),
    "edge_assoc": Scenario(
        reference=EdgeAssocReference.from_env,
        counted_classes=("bs",),
        note="agent-step = one base station's association/bandwidth step",
    ),
}


# ------------------------------------------------------------------ helpers
def numpy_sample(space: spaces.Space, rng: np.random.Generator) -> Any:
    """A uniform draw from a :mod:`jaxsg.spaces` space with NumPy (no masks)."""
    if isinstance(space, spaces.Dict):
        return {name: numpy_sample(s, rng) for name, s in space.spaces.items()}
    if isinstance(space, spaces.Discrete):
        return rng.integers(0, space.n, space.shape)
    if isinstance(space, spaces.Box):
        low = np.broadcast_to(np.asarray(space.low, np.float64), space.shape)
        high = np.broadcast_to(np.asarray(space.high, np.float64), space.shape)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError(f"numpy_sample: unbounded action space {space!r}")
        return rng.uniform(low, high)
    raise TypeError(f"numpy_sample: unsupported space {space!r}")


def _parse_value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _positive_int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def _positive(cast, allow_zero: bool = False):
    def parse(text):
        value = cast(text)
        if not (value > 0 or (allow_zero and value == 0)):
            raise argparse.ArgumentTypeError(
                f"expected a value {'>=' if allow_zero else '>'} 0, got {text!r}")
        return value

    return parse


def _fmt_rate(x: float) -> str:
    return f"{x:,.0f}"


def _device_info() -> dict:
    dev = jax.devices()[0]
    try:
        load = list(os.getloadavg())
    except OSError:  # pragma: no cover
        load = None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        usable = os.cpu_count()
    return {
        "jax_version": jax.__version__,
        "jaxlib_version": _jaxlib_version(),
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "platform": dev.platform,
        "device_kind": dev.device_kind,
        "device": str(dev),
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "processor": platform.processor() or platform.machine(),
        "loadavg_start": load,
    }


def _jaxlib_version() -> str | None:
    try:
        import jaxlib

        return jaxlib.__version__
    except Exception:  # pragma: no cover
        return None


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def steps_for(batch: int, steps: int, max_env_steps: int) -> int:
    """Scan length of one timed call: ``min(steps, max(1, max_env_steps // batch))``."""
    return max(1, min(steps, max_env_steps // batch))


# ------------------------------------------------------------------ JAX side
def make_run(env, params, policy, steps: int, block: int = 0) -> Callable:
    """``run(keys, state, obs) -> (state, obs, checksum)``: ``steps`` random-policy
    env steps of a batch of episodes (leading axis of every argument).

    ``block`` > 0 and smaller than the batch: the episodes are stepped in blocks of
    ``block`` (``jax.lax.map(..., batch_size=block)``: each block runs all ``steps``
    before the next starts), so a block's state stays in cache instead of streaming
    the whole batch's state through memory at every step."""

    def one_step(key, state, obs):
        k_next, k_act, k_env = jax.random.split(key, 3)
        action = policy(k_act, obs, state, params)
        obs, state, reward, terminated, truncated, info = env.step(k_env, state, action, params)
        total = sum(jnp.sum(r) for r in jax.tree.leaves(reward))
        total = total + terminated.astype(jnp.float32) + truncated.astype(jnp.float32)
        total = total + sum(jnp.sum(v) for v in jaxsg.wrappers.scalar_metrics(info).values())
        return k_next, state, obs, total

    batched_step = jax.vmap(one_step)

    def one_episode(args):
        def body(carry, _):
            keys, state, obs, acc = carry
            keys, state, obs, total = one_step(keys, state, obs)
            return (keys, state, obs, acc + total), None

        (_, state, obs, total), _ = jax.lax.scan(
            body, (*args, jnp.zeros((), jnp.float32)), None, length=steps)
        return state, obs, total

    def run_blocks(keys, state, obs):
        state, obs, totals = jax.lax.map(one_episode, (keys, state, obs), batch_size=block)
        return state, obs, jnp.sum(totals)

    def run(keys, state, obs):
        if 0 < block < keys.shape[0]:
            return run_blocks(keys, state, obs)

        def body(carry, _):
            keys, state, obs, acc = carry
            keys, state, obs, total = batched_step(keys, state, obs)
            return (keys, state, obs, acc + jnp.sum(total)), None

        init = (keys, state, obs, jnp.zeros((), jnp.float32))
        (_, state, obs, checksum), _ = jax.lax.scan(body, init, None, length=steps)
        return state, obs, checksum

    return run


def broadcast_batch(tree: Any, batch: int) -> Any:
    """Every leaf of ``tree`` repeated along a new leading axis of length ``batch``."""
    return jax.tree.map(lambda x: jnp.array(jnp.broadcast_to(x, (batch,) + x.shape)), tree)


def bench_jax_batch(
    run_fn: Callable,
    initial: tuple,
    batch: int,
    repeats: int,
    seed: int,
    compiler_options: dict | None = None,
) -> dict:
    """AOT-compile ``run_fn`` for ``batch`` episodes, warm up once, time ``repeats`` calls.

    ``initial`` is one episode's ``(obs, state)`` from ``env.reset``, broadcast to
    the batch (each episode has its own key, so they diverge from the first
    step; this avoids compiling a batched reset per batch size). Each call
    continues from the previous call's ``(state, obs)``.
    """
    keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), batch), batch)
    obs, state = broadcast_batch(initial, batch)
    jax.block_until_ready((keys, obs, state))

    t0 = time.perf_counter()
    lowered = jax.jit(run_fn).lower(keys, state, obs)
    t1 = time.perf_counter()
    compiled = lowered.compile(compiler_options=compiler_options or None)
    t2 = time.perf_counter()
    cost = xla_cost(compiled)

    state, obs, checksum = jax.block_until_ready(compiled(keys, state, obs))  # warm-up
    checksums = [float(checksum)]
    times, cpu = [], 0.0
    for _ in range(repeats):
        c = time.process_time()
        t = time.perf_counter()
        state, obs, checksum = jax.block_until_ready(compiled(keys, state, obs))
        times.append(time.perf_counter() - t)
        cpu += time.process_time() - c
        checksums.append(float(checksum))
    return {
        "batch": batch,
        "lower_s": t1 - t0,
        "compile_s": t2 - t0,
        "call_s": times,
        "call_s_median": statistics.median(times),
        "call_s_best": min(times),
        "cpu_per_wall": cpu / sum(times),
        "checksum": checksums[-1],
        "checksums_finite": all(math.isfinite(c) for c in checksums),
        "xla_flops_per_call": cost.get("flops"),
        "xla_bytes_per_call": cost.get("bytes accessed"),
        "xla_transcendentals_per_call": cost.get("transcendentals"),
    }


def xla_cost(compiled) -> dict:
    """XLA's cost analysis of a compiled call (flops, bytes accessed, transcendentals)."""
    try:
        cost = compiled.cost_analysis()
    except Exception:  # pragma: no cover - backend without cost analysis
        return {}
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    return {k: float(v) for k, v in (cost or {}).items()
            if k in ("flops", "bytes accessed", "transcendentals")}


def measure_peak(seconds: float = 1.0) -> dict:
    """Measured peaks of this device: float32 matmul FLOP/s and streaming bytes/s.

    The matmul is 1024×1024 (CPU) or 8192×8192 (accelerators), the streaming
    kernel reads and writes a 64 Mi-element float32 array (x·a + b); each is
    AOT-compiled and timed around ``block_until_ready`` for about ``seconds``,
    best call kept. These are the roofs the env step's achieved FLOP/s and
    bytes/s are compared with.
    """
    n = 1024 if jax.default_backend() == "cpu" else 8192
    a = jnp.ones((n, n), jnp.float32)
    mm = jax.jit(lambda x: x @ x).lower(a).compile()
    m = 2**26 if jax.default_backend() != "cpu" else 2**24
    v = jnp.ones((m,), jnp.float32)
    stream = jax.jit(lambda x: x * 1.0001 + 0.5).lower(v).compile()

    def best(fn, arg):
        jax.block_until_ready(fn(arg))
        t_end, times = time.perf_counter() + seconds, []
        while time.perf_counter() < t_end or len(times) < 3:
            t = time.perf_counter()
            jax.block_until_ready(fn(arg))
            times.append(time.perf_counter() - t)
        return min(times)

    flops = 2.0 * n**3 / best(mm, a)
    bandwidth = 2.0 * 4 * m / best(stream, v)
    return {"matmul_n": n, "peak_flops_per_s": flops, "stream_elements": m,
            "peak_bytes_per_s": bandwidth}


def roofline(row: dict, peak: dict) -> dict:
    """Achieved FLOP/s and bytes/s of a timed call, and its fraction of the roofline.

    Roofline attainable FLOP/s = min(peak FLOP/s, arithmetic intensity × peak
    bytes/s), intensity = XLA flops ÷ XLA bytes accessed per call. The fraction
    is achieved ÷ attainable (1.0 = at the machine's limit for this intensity).
    """
    flops, nbytes = row.get("xla_flops_per_call"), row.get("xla_bytes_per_call")
    if not flops or not nbytes or not peak:
        return {}
    t = row["call_s_median"]
    intensity = flops / nbytes
    attainable = min(peak["peak_flops_per_s"], intensity * peak["peak_bytes_per_s"])
    return {
        "achieved_flops_per_s": flops / t,
        "achieved_bytes_per_s": nbytes / t,
        "arithmetic_intensity": intensity,
        "roofline_fraction": (flops / t) / attainable,
        "bound": "compute" if intensity * peak["peak_bytes_per_s"] >= peak["peak_flops_per_s"]
        else "memory",
    }


# ------------------------------------------------------------------ NumPy side
def bench_reference(
    env, params, scenario: Scenario, seconds: float, chunks: int, seed: int
) -> dict:
    ref = scenario.reference(env, params)
    rng = np.random.default_rng(seed)
    action_spaces = {c: env.action_space(c, params) for c in env.agent_classes}

    def step():
        action = {c: numpy_sample(s, rng) for c, s in action_spaces.items()}
        ref.step(action, rng)

    ref.reset(rng)
    for _ in range(3):  # warm-up (first-call allocations)
        step()
    chunk_s = seconds / chunks
    rates_steps, total_steps, total_s = [], 0, 0.0
    c0 = time.process_time()
    for _ in range(chunks):
        n = 0
        t0 = time.perf_counter()
        while True:
            step()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= chunk_s:
                break
        rates_steps.append(n / dt)
        total_steps += n
        total_s += dt
    cpu = time.process_time() - c0
    return {
        "episode_steps": total_steps,
        "seconds": total_s,
        "chunks": chunks,
        "episode_steps_per_s_chunks": rates_steps,
        "episode_steps_per_s_median": statistics.median(rates_steps),
        "episode_steps_per_s_best": max(rates_steps),
        "cpu_per_wall": cpu / total_s,
    }


# ------------------------------------------------------------------ sections
def section_peak(args, scenario: Scenario, out: dict) -> None:
    """Measured device peaks (the roofs of the roofline fractions)."""
    peak = measure_peak(seconds=0.5 if args.fast_compile else 1.0)
    out["peak"] = peak
    out["_lines"] += [
        "",
        f"measured peak: {peak['peak_flops_per_s'] / 1e9:,.1f} GFLOP/s float32 matmul "
        f"({peak['matmul_n']}x{peak['matmul_n']}), {peak['peak_bytes_per_s'] / 1e9:,.1f} GB/s "
        f"streaming ({peak['stream_elements']:,} float32 read+write)",
    ]
    _flush(args, out)


def section_env(args, scenario: Scenario, out: dict) -> None:
    """Environment stepping throughput of every selected scenario."""
    out["scenarios"] = {}
    for name in out["scenario_names"]:
        if name not in SCENARIOS:
            continue
        sub_out = {"env_kwargs": out["_env_kwargs"][name]}
        out["scenarios"][name] = sub_out
        _section_env_one(args, name, SCENARIOS[name], out, sub_out)
    if len(out["scenario_names"]) == 1:
        out["env"] = out["scenarios"][out["scenario_names"][0]]["env"]


def _section_env_one(args, name: str, scenario: Scenario, out: dict, sub_out: dict) -> None:
    """Environment stepping throughput: JAX batches vs the NumPy reference."""
    lines = out["_lines"]
    env, params = jaxsg.make(name, **sub_out["env_kwargs"])
    lines.append("")
    lines.append(f"== {name} {sub_out['env_kwargs']}")
    agents = sum(env.num_agents(c) for c in scenario.counted_classes)
    policy = jaxsg.random_policy(env)

    lines.append(
        f"env stepping, random policy; agents counted per episode-step: {agents} "
        f"({'+'.join(scenario.counted_classes)}); {scenario.note}"
    )
    lines.append(
        "JAX: AOT-compiled lax.scan of vmapped (key split + random_policy + env.step), "
        "action sampling inside the timed loop; median of "
        f"{args.repeats} block_until_ready-timed calls after 1 warm-up"
    )
    lines.append(
        "NumPy: reference, one episode at a time, numpy-uniform random actions "
        f"(sampling timed), {args.ref_seconds:g} s in {args.ref_chunks} chunks, median chunk"
    )
    if args.block > 0:
        lines.append(f"batches above {args.block} episodes are stepped in blocks of "
                     f"{args.block} (each block runs all its steps in turn; --block 0: never)")
    lines.append(
        "ratio = JAX / NumPy agent-steps/s (median/median; best = best/best); cpu/wall = "
        "process CPU time / wall time while timed (well below 1: the CPU was shared)"
    )
    _flush(args, out)

    ref_row = None
    if scenario.reference is not None:
        r = bench_reference(env, params, scenario, args.ref_seconds, args.ref_chunks, args.seed)
        ref_row = dict(
            r,
            agents_per_episode=agents,
            agent_steps_per_s=r["episode_steps_per_s_median"] * agents,
            agent_steps_per_s_best=r["episode_steps_per_s_best"] * agents,
        )

    header = (
        f"{'batch':>7} {'steps':>5} {'agent-steps/call':>16} {'compile s':>9} "
        f"{'median s':>9} {'agent-steps/s':>13} {'best a-s/s':>13} {'ratio':>7} "
        f"{'best':>7} {'cpu/wall':>8} {'roofline':>8}"
    )
    lines.append("")
    lines.append(header)
    lines.append("-" * len(header))
    if ref_row is not None:
        lines.append(
            f"{'NumPy':>7} {'':>5} {'1 episode':>16} {'-':>9} "
            f"{1.0 / ref_row['episode_steps_per_s_median']:>9.2e} "
            f"{_fmt_rate(ref_row['agent_steps_per_s']):>13} "
            f"{_fmt_rate(ref_row['agent_steps_per_s_best']):>13} {'1.0x':>7} {'1.0x':>7} "
            f"{ref_row['cpu_per_wall']:>8.2f}"
        )
    _flush(args, out)

    initial = jax.jit(lambda k: env.reset(k, params))(jax.random.key(args.seed))
    compiler_options = {"xla_backend_optimization_level": 0} if args.fast_compile else None
    rows = []
    for batch in args.batches:
        steps = steps_for(batch, args.steps, args.max_env_steps)
        row = bench_jax_batch(
            make_run(env, params, policy, steps, args.block),
            initial,
            batch,
            args.repeats,
            args.seed,
            compiler_options,
        )
        row["steps"] = steps
        # XLA's cost analysis counts a while-loop body once, whatever its trip count
        # (checked: a scan of length 1, 3 and 30 report the same flops), so the
        # per-call cost is the body's cost times the scan length. Stepped in blocks (a
        # scan over steps inside a loop over blocks) the counts did not scale with steps
        # × blocks when checked (4,096 and 16,384 episodes disagreed by 1.8×), so a
        # blocked row has no cost and no roofline fraction (--block 0 gives them).
        blocked = 0 < args.block < batch
        for k in ("xla_flops_per_call", "xla_bytes_per_call", "xla_transcendentals_per_call"):
            if row.get(k) is not None:
                row[k] = None if blocked else row[k] * steps
        row.update(roofline(row, out.get("peak", {})))
        per_call = batch * steps * agents
        row.update(
            agent_steps_per_call=per_call,
            agent_steps_per_s=per_call / row["call_s_median"],
            agent_steps_per_s_best=per_call / row["call_s_best"],
            peak_rss_mb=_peak_rss_mb(),
        )
        if ref_row is not None:
            row["ratio_vs_numpy"] = row["agent_steps_per_s"] / ref_row["agent_steps_per_s"]
            row["ratio_vs_numpy_best"] = (
                row["agent_steps_per_s_best"] / ref_row["agent_steps_per_s_best"]
            )
        ratio = f"{row['ratio_vs_numpy']:.1f}x" if ref_row is not None else "-"
        ratio_best = f"{row['ratio_vs_numpy_best']:.1f}x" if ref_row is not None else "-"
        lines.append(
            f"{batch:>7} {steps:>5} {per_call:>16,} {row['compile_s']:>9.1f} "
            f"{row['call_s_median']:>9.2e} {_fmt_rate(row['agent_steps_per_s']):>13} "
            f"{_fmt_rate(row['agent_steps_per_s_best']):>13} {ratio:>7} {ratio_best:>7} "
            f"{row['cpu_per_wall']:>8.2f} "
            + (f"{row['roofline_fraction']:>8.1%}" if "roofline_fraction" in row else f"{'-':>8}")
        )
        rows.append(row)
        _flush(args, out)

    peak_row = max(rows, key=lambda r: r["agent_steps_per_s"])
    lines.append(f"throughput peaks at batch {peak_row['batch']}: "
                 f"{_fmt_rate(peak_row['agent_steps_per_s'])} agent-steps/s"
                 + (f", {peak_row['roofline_fraction']:.1%} of the roofline "
                    f"({peak_row['bound']}-bound, intensity "
                    f"{peak_row['arithmetic_intensity']:.2f} flop/byte)"
                    if "roofline_fraction" in peak_row else ""))
    _flush(args, out)
    sub_out["env"] = {
        "peak_batch": peak_row["batch"],
        "agents_per_episode": agents,
        "counted_classes": list(scenario.counted_classes),
        "definition": (
            "agent-steps/s = parallel episodes x scan steps x counted agents per episode "
            f"/ seconds per call; counted: {list(scenario.counted_classes)}; {scenario.note}"
        ),
        "reference": ref_row,
        "jax": rows,
    }


def _train_configs(updates: int, num_envs: int = 8) -> dict:
    """Small fixed training configs: the bench measures throughput, not learning."""
    from agents import madfrl, mappo

    m_cfg = madfrl.Config(num_envs=num_envs, num_updates=updates, batch_size=64,
                           buffer_size=128, warmup_updates=1)
    p_cfg = mappo.Config(num_envs=num_envs, num_steps=10, num_updates=max(1, updates // 10),
                         update_epochs=2, num_minibatches=2)
    return {
        # name: (make_train, config, env steps per env per train call)
        "madfrl": (madfrl.make_train, m_cfg, m_cfg.num_updates),
        "mappo": (mappo.make_train, p_cfg, p_cfg.num_updates * p_cfg.num_steps),
    }


def section_train(args, scenario: Scenario, out: dict) -> None:
    """Training throughput: env agent-steps per second *including* the updates, for
    ``jit(vmap(train))`` over ``--train-seeds`` seeds × ``--train-envs`` envs per seed
    (pairs with seeds × envs ≤ ``--train-max-batch``; AOT-compiled,
    block_until_ready-timed), next to env-only stepping (random policy) at the same
    number of parallel episodes, measured in the same run. MADFRL does one gradient
    step per update of ``envs`` env steps, so envs per seed sets its gradient steps per
    env step; MAPPO does 2 epochs × 2 minibatches per rollout of envs × 10 steps. The
    learners benchmarked (MADFRL, MAPPO) are sgin's."""
    if "sgin" not in out["scenario_names"]:
        return
    lines = out["_lines"]
    scenario = SCENARIOS["sgin"]
    env, params = jaxsg.make("sgin", **out["_env_kwargs"]["sgin"])
    n_agents = sum(env.num_agents(c) for c in scenario.counted_classes)
    lines.append("")
    lines.append(
        f"training, jit(vmap(train)) over seeds, {args.train_updates} MADFRL updates "
        "(envs env steps + 1 gradient step per update) / MAPPO rollouts of envs x 10 "
        "steps; agent-steps/s = seeds x env steps x counted agents / s, updates included; "
        "env-only = random-policy stepping at seeds x envs episodes, same run"
    )
    header = (f"{'algorithm':>9} {'seeds':>5} {'envs':>5} {'agent-steps/call':>16} "
              f"{'compile s':>9} {'median s':>9} {'agent-steps/s':>13} {'env-only':>9} "
              f"{'fraction':>8} {'cpu/wall':>8}")
    lines += [header, "-" * len(header)]
    _flush(args, out)
    rows, env_only = [], {}
    policy = jaxsg.random_policy(env)
    initial = jax.jit(lambda k: env.reset(k, params))(jax.random.key(args.seed))
    pairs = [(envs, seeds) for envs in args.train_envs for seeds in args.train_seeds
             if envs * seeds <= args.train_max_batch]
    for envs, seeds in pairs:
        batch = envs * seeds
        if batch not in env_only:
            steps = steps_for(batch, args.steps, args.max_env_steps)
            row = bench_jax_batch(make_run(env, params, policy, steps), initial, batch,
                                  args.repeats, args.seed,
                                  {"xla_backend_optimization_level": 0}
                                  if args.fast_compile else None)
            env_only[batch] = batch * steps * n_agents / row["call_s_median"]
    configs = {e: _train_configs(args.train_updates, e) for e in args.train_envs}
    for name in configs[args.train_envs[0]]:
        for envs, seeds in pairs:
            make_train, cfg, steps_per_env = configs[envs][name]
            train = make_train(env, cfg)
            keys = jax.random.split(jax.random.PRNGKey(args.seed), seeds)
            t0 = time.perf_counter()
            compiled = jax.jit(jax.vmap(train, in_axes=(0, None))).lower(keys, params).compile()
            compile_s = time.perf_counter() - t0
            jax.block_until_ready(compiled(keys, params))  # warm-up
            times, cpu = [], 0.0
            for _ in range(args.train_repeats):
                c0, t0 = time.process_time(), time.perf_counter()
                jax.block_until_ready(compiled(keys, params))
                times.append(time.perf_counter() - t0)
                cpu += time.process_time() - c0
            per_call = seeds * cfg.num_envs * steps_per_env * n_agents
            median = statistics.median(times)
            fraction = per_call / median / env_only[seeds * envs]
            rows.append({"algorithm": name, "seeds": seeds, "envs_per_seed": envs,
                         "agent_steps_per_call": per_call, "compile_s": compile_s,
                         "call_s_median": median, "agent_steps_per_s": per_call / median,
                         "env_only_agent_steps_per_s": env_only[seeds * envs],
                         "fraction_of_env_only": fraction,
                         "cpu_per_wall": cpu / sum(times) if times else None})
            lines.append(f"{name:>9} {seeds:>5} {envs:>5} {per_call:>16,} {compile_s:>9.1f} "
                         f"{median:>9.2e} {_fmt_rate(per_call / median):>13} "
                         f"{_fmt_rate(env_only[seeds * envs]):>9} {fraction:>8.1%} "
                         + (f"{cpu / sum(times):>8.2f}" if times else f"{'-':>8}"))
            _flush(args, out)
    out["train"] = rows


#: Benchmark sections, run in this order (``--sections``). Each is
#: ``fn(args, scenario, out)``.
SECTIONS: dict[str, Callable[[argparse.Namespace, Scenario, dict], None]] = {
    "peak": section_peak,
    "env": section_env,
    "train": section_train,
}


# ------------------------------------------------------------------ CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sweeps.bench",
        description="Agent-steps/s of a jaxsg scenario under a random policy, "
        "JAX (AOT, batched) vs the NumPy reference.",
    )
    p.add_argument("--scenario", default="all", choices=["all", *sorted(SCENARIOS)],
                   help="one scenario, or all four in the same run (default)")
    p.add_argument(
        "--batches",
        type=_positive_int_list,
        default=list(DEFAULT_BATCHES),
        help="comma-separated parallel-episode counts (default 1,64,1024,4096,16384)",
    )
    p.add_argument("--steps", type=_positive(int), default=50, help="scan length per call (max)")
    p.add_argument("--block", type=_positive(int, allow_zero=True), default=None,
                   help="step batches larger than this in blocks of this many episodes "
                   "(jax.lax.map batch_size; 0: never; default 1024 on CPU, where a "
                   "block's state fits in cache, 0 on accelerators)")
    p.add_argument(
        "--max-env-steps",
        type=_positive(int),
        default=65536,
        help="cap on batch x steps per timed call; large batches get fewer steps (default 65536)",
    )
    p.add_argument("--repeats", type=_positive(int), default=5, help="timed calls per batch")
    p.add_argument("--ref-seconds", type=_positive(float), default=2.0)
    p.add_argument("--ref-chunks", type=_positive(int), default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-seeds", type=_positive_int_list, default=[1, 64],
                   help="vmapped seeds for the training section (default 1,64)")
    p.add_argument("--train-envs", type=_positive_int_list, default=[8, 512],
                   help="envs per seed in the training section (default 8,512)")
    p.add_argument("--train-max-batch", type=_positive(int), default=512,
                   help="training rows only where seeds x envs <= this (default 512)")
    p.add_argument("--train-repeats", type=int, default=2,
                   help="timed calls per training row after one warm-up (default 2)")
    p.add_argument("--train-updates", type=int, default=20,
                   help="MADFRL updates per timed train call (MAPPO: a tenth, at least 1)")
    p.add_argument(
        "--fast-compile",
        action="store_true",
        help="XLA backend optimisation level 0: about half the compile time, slower code; "
        "for smoke tests only (timings not representative; flagged in the output)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a jaxsg.make kwarg (sizes, options, params), repeatable",
    )
    p.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run, from {list(SECTIONS)}",
    )
    p.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH ('-': stdout)")
    return p


def _flush(args, out: dict) -> None:
    stream = sys.stderr if args.json == "-" else sys.stdout
    for line in out["_lines"][out["_printed"] :]:
        print(line, file=stream, flush=True)
    out["_printed"] = len(out["_lines"])


def _jsonable(x: Any) -> Any:
    """Plain JSON values; non-finite floats become ``null``."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def main(argv: list[str] | None = None) -> dict:
    configure_cpu_runtime()  # the entry point owns the platform settings
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.block is None:
        args.block = CPU_BLOCK if jax.default_backend() == "cpu" else 0
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown or not sections:
        parser.error(f"--sections: unknown {unknown}; choose from {list(SECTIONS)}")
    names = sorted(SCENARIOS) if args.scenario == "all" else [args.scenario]
    if args.set and len(names) > 1:
        parser.error("--set needs one --scenario (sizes and params differ per scenario)")
    scenario = SCENARIOS[names[0]]
    env_kwargs = {n: dict(SCENARIOS[n].make_kwargs) for n in names}
    for item in args.set:
        if "=" not in item:
            parser.error(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        env_kwargs[names[0]][k.strip()] = _parse_value(v.strip())
    try:
        for n in names:
            jaxsg.make(n, **env_kwargs[n])
    except (ValueError, TypeError) as e:
        parser.error(f"--set: {e}")

    t_start = time.perf_counter()
    dev = _device_info()
    out: dict = {
        "_lines": [],
        "_printed": 0,
        "scenario": args.scenario,
        "scenario_names": names,
        "_env_kwargs": env_kwargs,
        "env_kwargs": env_kwargs if len(names) > 1 else env_kwargs[names[0]],
        "device": dev,
        "config": {
            "batches": args.batches,
            "block": args.block,
            "steps": args.steps,
            "max_env_steps": args.max_env_steps,
            "repeats": args.repeats,
            "ref_seconds": args.ref_seconds,
            "ref_chunks": args.ref_chunks,
            "seed": args.seed,
            "fast_compile": args.fast_compile,
            "sections": sections,
        },
    }
    load = dev["loadavg_start"]
    out["_lines"] += [
        f"jaxsg bench — scenarios {', '.join(names)}",
        f"jax {dev['jax_version']} (jaxlib {dev['jaxlib_version']}), numpy {dev['numpy_version']}, "
        f"python {dev['python']}",
        f"backend {dev['backend']}, device {dev['device']} kind {dev['device_kind']!r} "
        f"platform {dev['platform']} x{dev['device_count']}; "
        f"CPUs {dev['cpu_count']} ({dev['cpu_usable']} usable), {dev['processor']}; "
        + (f"load avg {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}" if load else ""),
    ]
    if args.fast_compile:
        out["_lines"].append(
            "WARNING: --fast-compile (XLA opt level 0): timings not representative"
        )
    for name in sections:
        SECTIONS[name](args, scenario, out)
    out["total_s"] = time.perf_counter() - t_start
    out["peak_rss_mb"] = _peak_rss_mb()
    out["_lines"].append("")
    out["_lines"].append(f"total {out['total_s']:.1f} s, peak RSS {out['peak_rss_mb']:.0f} MB")
    _flush(args, out)

    result = {k: v for k, v in out.items() if not k.startswith("_")}
    if args.json:
        import json

        text = json.dumps(_jsonable(result), indent=2, allow_nan=False)
        if args.json == "-":
            print(text)
        else:
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return result


if __name__ == "__main__":
    main()
