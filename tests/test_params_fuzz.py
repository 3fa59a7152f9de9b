"""Property tests: params drawn anywhere inside the declared bounds give finite outputs.

For every scenario, Hypothesis draws each numeric param within its declared
:class:`jaxsg.validation.Bound` (float32-representable values; log-uniform over huge
ranges; the bound's end points and the default value as special cases), puts the
scenario's ordering pairs in order, and validates with ``env.validate_params``. A draw
that validation rejects is skipped only when the rejection is one of the scenario's
*documented* cross-field constraints (listed in ``CROSS_FIELD``); any other rejection of
an in-bounds draw fails the test. The env (small static sizes) then runs reset and a
few steps of the uniform random policy (past the horizon, so the auto-reset runs too)
under one ``jax.jit`` per scenario — the params are a traced argument, so every example
reuses the same compiled program — and every inexact leaf of obs, reward and info must
be finite at every step.

Default suite: ``FUZZ_EXAMPLES`` examples per scenario, derandomized (the same draws on
every run, so CI is reproducible). ``-m slow`` runs a deeper randomized search.
"""

from __future__ import annotations

import dataclasses
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import jaxsg  # noqa: E402
from jaxsg.wrappers import random_policy  # noqa: E402

F32 = np.float32
F32_MAX = float(np.finfo(F32).max)
F32_TINY = float(np.finfo(F32).tiny)  # smallest normal: subnormals flush to 0 on CPU
FUZZ_EXAMPLES = int(os.environ.get("JAXSG_FUZZ_EXAMPLES", "30"))
HORIZON = 3
NUM_STEPS = 4  # > HORIZON: the auto-reset branch is exercised

#: Static sizes: small, so one compile per scenario is cheap on 2 cores.
SIZES = {
    "sgin": dict(num_mbs=2, users_per_mbs=2, num_leo=2, num_channels=3, horizon=HORIZON),
    "dt_deploy": dict(num_users=4, num_end_devices=2, horizon=HORIZON),
    "spectrum": dict(num_satellites=2, num_cells=3, users_per_satellite=4, num_channels=3,
                     slots_per_channel=2, num_price_levels=3, num_power_levels=2,
                     horizon=HORIZON),
    "edge_assoc": dict(num_users=6, num_bs=2, num_subchannels=2, num_producers=2,
                       horizon=HORIZON),
}

#: Documented cross-field constraints (substrings of their ValueError messages) under
#: which an in-bounds draw may be rejected; each names where it is documented.
CROSS_FIELD = {
    # DtDeployEnv.validate_params: end devices in distinct grid cells; some node must host
    "dt_deploy": ("placement cells", "are both 0"),
    # SpectrumEnv.validate_params: strictly increasing price / power-control grids
    "spectrum": ("grid not increasing",),
    "sgin": (),
    # EdgeAssocEnv.validate_params: the mean link SNR must lie in a representable range
    "edge_assoc": ("link budget out of range",),
}

#: Known failures in files this suite's author does not own, with the cause (see the
#: report of the fuzz branch); strict=False so the lead's fix un-xfails cleanly.
XFAIL: dict[str, str] = {}  # scenario -> reason, for a known failure being fixed


def _f32(x: float) -> float:
    return float(F32(x))


def _inside(x: float, lo: float, lo_inc: bool, step_up: bool) -> float:
    """The float32 value nearest ``x`` on the allowed side of an (exclusive) end."""
    v = F32(x)
    direction = F32(np.inf) if step_up else F32(-np.inf)
    while (float(v) < lo or (not lo_inc and float(v) == lo)) if step_up else (
            float(v) > lo or (not lo_inc and float(v) == lo)):
        v = np.nextafter(v, direction)
    if 0 < abs(float(v)) < F32_TINY:  # a subnormal is flushed to 0: the next normal
        v = F32(math.copysign(F32_TINY, float(v)))
    return float(v)


def _log_uniform(lo: float, hi: float):
    """Float32 values log-uniform in [lo, hi] (0 < lo < hi)."""
    a, b = math.log10(lo), math.log10(hi)
    return st.floats(a, b).map(lambda e: float(np.clip(F32(10.0**e), F32(lo), F32(hi))))


def field_strategy(bound, default):
    """Values of one field inside ``bound`` (after the float32 cast)."""
    lo = -F32_MAX if math.isinf(bound.low) else bound.low
    hi = F32_MAX if math.isinf(bound.high) else bound.high
    lo_eff = _inside(lo, lo, bound.low_inclusive or math.isinf(bound.low), step_up=True)
    hi_eff = _inside(hi, hi, bound.high_inclusive or math.isinf(bound.high), step_up=False)
    if bound.integer:
        lo_i, hi_i = math.ceil(lo_eff), math.floor(min(hi_eff, 2.0**24))
        body = st.integers(lo_i, hi_i).map(float)
        specials = [float(lo_i), float(hi_i)]
    else:
        specials = [lo_eff, hi_eff]
        if lo_eff > 0 and hi_eff / lo_eff > 1e3:
            body = _log_uniform(lo_eff, hi_eff)
        elif lo_eff >= 0 and hi_eff > 1e3:
            # [0, huge]: 0, or log-uniform over the positive normals
            body = st.one_of(st.just(lo_eff), _log_uniform(max(lo_eff, F32_TINY), hi_eff))
        elif hi_eff - lo_eff > 1e3 and lo_eff < 0 < hi_eff:
            pos = _log_uniform(F32_TINY, hi_eff)
            body = st.one_of(st.just(0.0), pos, _log_uniform(F32_TINY, -lo_eff).map(
                lambda v: -v))
        else:
            body = st.floats(lo_eff, hi_eff, width=32)
    if bound.allow_inf:
        specials.append(math.inf)
    if np.all(np.isfinite(np.asarray(default, np.float64))):
        specials.append(_f32(float(default)))
    return st.one_of(body, body, st.sampled_from(specials))


def _order(values: dict, order) -> dict:
    """Swap ordering pairs until every ``low <= high`` (chains such as a <= b <= c)."""
    for _ in range(len(order) + 1):
        changed = False
        for a, b in order:
            if values[a] > values[b]:
                values[a], values[b] = values[b], values[a]
                changed = True
        if not changed:
            break
    return values


@st.composite
def params_strategy(draw, env):
    base = env.default_params
    values = {
        f.name: draw(field_strategy(env.param_bounds[f.name], getattr(base, f.name)))
        for f in dataclasses.fields(base)
    }
    return _order(values, env.param_order)


_ROLLOUTS: dict = {}


def _env(name):
    if name not in _ROLLOUTS:
        env, params = jaxsg.make(name, **SIZES[name])
        policy = random_policy(env)

        def rollout(params, key):
            k_reset, k_steps = jax.random.split(key)
            obs, state = env.reset(k_reset, params)

            def finite(tree):
                return {
                    jax.tree_util.keystr(path): jnp.all(jnp.isfinite(leaf))
                    for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
                    if jnp.issubdtype(leaf.dtype, jnp.inexact)
                }

            def body(state, key):
                k_act, k_step = jax.random.split(key)
                action = policy(k_act, None, state, params)
                obs, state, reward, _, _, info = env.step(k_step, state, action, params)
                return state, {"obs": finite(obs), "reward": finite(reward),
                               "info": finite(info)}

            _, ok = jax.lax.scan(body, state, jax.random.split(k_steps, NUM_STEPS))
            ok = jax.tree.map(jnp.all, ok)
            ok["reset_obs"] = finite(obs)
            return ok

        _ROLLOUTS[name] = (env, jax.jit(rollout), [0])
    return _ROLLOUTS[name]


def _as_params(env, values: dict):
    return env.default_params.replace(**{k: F32(v) for k, v in values.items()})


def _traced(params):
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)


def check_finite(name: str, values: dict, seed: int = 0) -> None:
    env, rollout, _ = _env(name)
    params = _as_params(env, values)
    try:
        env.validate_params(params)
    except ValueError as err:
        documented = any(s in str(err) for s in CROSS_FIELD[name])
        assert documented, f"in-bounds draw rejected for an undocumented reason: {err}"
        assume(False)
    ok = jax.device_get(rollout(_traced(params), jax.random.PRNGKey(seed)))
    _ROLLOUTS[name][2][0] += 1
    bad = [f"{group}{path}" for group, leaves in ok.items()
           for path, v in leaves.items() if not bool(v)]
    if bad:
        base = env.default_params
        changed = {k: v for k, v in values.items() if _f32(getattr(base, k)) != v}
        raise AssertionError(f"{name}: non-finite {bad} with params (non-default) {changed}")


def _given(name: str, max_examples: int, derandomize: bool):
    # the default suite does not shrink a failure (it costs minutes on 2 cores); the
    # deep run does, for a minimal report
    phases = (Phase.explicit, Phase.generate) if derandomize else tuple(Phase)
    cfg = settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=derandomize,
        database=None,
        phases=phases,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                               HealthCheck.data_too_large],
    )
    return lambda f: cfg(given(data=st.data(), seed=st.integers(0, 2**31 - 1))(f))


def _marks(name):
    return [pytest.mark.xfail(reason=XFAIL[name], strict=False)] if name in XFAIL else []


SCENARIOS = [pytest.param(n, marks=_marks(n)) for n in SIZES]


@pytest.mark.parametrize("name", SCENARIOS)
def test_params_in_bounds_give_finite_outputs(name):
    env, _, runs = _env(name)
    before = runs[0]

    @_given(name, FUZZ_EXAMPLES, derandomize=True)
    def prop(data, seed):
        check_finite(name, data.draw(params_strategy(env)), seed)

    prop()
    # most draws reach the rollout (few are skipped by a documented cross-field constraint)
    assert runs[0] - before >= FUZZ_EXAMPLES // 2


@pytest.mark.slow
@pytest.mark.parametrize("name", SCENARIOS)
def test_params_in_bounds_give_finite_outputs_deep(name):
    env = _env(name)[0]

    @_given(name, 1000, derandomize=False)
    def prop(data, seed):
        check_finite(name, data.draw(params_strategy(env)), seed)

    prop()


@pytest.mark.parametrize("name", list(SIZES))
def test_fuzz_compiles_once_per_scenario(name):
    """The rollout is traced once for any params: examples reuse one compiled program."""
    env, rollout, _ = _env(name)
    p1 = _traced(env.default_params)
    p2 = jax.tree.map(lambda x: x * F32(1.0), p1)
    rollout(p1, jax.random.PRNGKey(0))
    n = rollout._cache_size()
    rollout(p2, jax.random.PRNGKey(1))
    assert rollout._cache_size() == n


@pytest.mark.parametrize("name", list(SIZES))
def test_defaults_are_drawn_and_finite(name):
    """The strategy contains the defaults, and they are finite (a test that can fail)."""
    env = _env(name)[0]
    base = env.default_params
    values = {f.name: _f32(getattr(base, f.name)) for f in dataclasses.fields(base)}
    check_finite(name, values)
