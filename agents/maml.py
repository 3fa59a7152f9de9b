"""Model-agnostic meta-learning (MAML) with a differentiable inner loop.

SGIN paper Sec. IV-B(1), eq. 31-32 and Algorithm 2: the inner loop adapts
w' = w − α∇_w L_Γ(w) on a task's training samples (K steps here); the outer
loop updates w ← w − β∇_w Σ_Γ L_Γ(w') on the tasks' test samples,
differentiating *through* the inner loop (second order by default; the
first-order approximation treats ∇L_Γ as a constant).

* :func:`adapt` — K SGD steps as a ``lax.scan`` of ``jax.grad`` steps.
* :func:`meta_loss` — mean over a vmapped task batch of the post-adaptation loss.
* :func:`make_meta_train_step` — jitted outer step with any optax optimiser.
* :func:`sample_sgin_tasks` — tasks Γ as arrival regimes: a batch of env params
  with per-task arrival range [A_min, A_max] and Lyapunov weight V.

``loss_fn(params, task) -> scalar`` is user-supplied: ``params`` is any pytree
(flax ``linen`` variables included), ``task`` any pytree; a task *batch* is the
same pytree with a leading task axis on every leaf. For the paper's actor,
``task`` would carry the env params of Γ, the sampled states and the (fixed)
critic, and ``loss_fn`` returns −Q(S, π(S)).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

PyTree = Any
LossFn = Callable[[PyTree, PyTree], jnp.ndarray]


def adapt(
    params: PyTree,
    task: PyTree,
    loss_fn: LossFn,
    steps: int,
    lr: float,
    first_order: bool = False,
) -> PyTree:
    """Inner loop: ``steps`` SGD steps p ← p − lr·∇_p loss_fn(p, task).

    ``steps`` and ``first_order`` are static; ``lr`` may be traced. The steps
    run in a ``lax.scan``, so gradients of the result w.r.t. ``params`` are
    exact second-order MAML gradients; with ``first_order=True`` the inner
    gradient is wrapped in ``stop_gradient`` (FOMAML: d p_K / d p_0 = I).
    The adapted parameters are the same either way; only their derivative
    differs.
    """
    steps = int(steps)
    if steps < 0:
        raise ValueError(f"steps must be >= 0; got {steps}")
    if steps == 0:
        return params
    grad_fn = jax.grad(loss_fn)

    def body(p, _):
        g = grad_fn(p, task)
        if first_order:
            g = jax.lax.stop_gradient(g)
        p = jax.tree.map(lambda x, gx: (x - lr * gx).astype(jnp.result_type(x)), p, g)
        return p, None

    params, _ = jax.lax.scan(body, params, None, length=steps)
    return params


def meta_loss(
    params: PyTree,
    tasks_train: PyTree,
    tasks_val: PyTree,
    loss_fn: LossFn,
    steps: int,
    lr: float,
    first_order: bool = False,
) -> jnp.ndarray:
    """Eq. 31: mean over tasks Γ of loss_fn(adapt(params, Γ_train), Γ_val).

    ``tasks_train`` and ``tasks_val`` are task batches (leading task axis) of
    equal length; the per-task computation is vmapped.
    """

    def one(task_train, task_val):
        adapted = adapt(params, task_train, loss_fn, steps, lr, first_order)
        return loss_fn(adapted, task_val)

    return jnp.mean(jax.vmap(one)(tasks_train, tasks_val))


def make_meta_train_step(
    loss_fn: LossFn,
    optimizer: optax.GradientTransformation,
    steps: int,
    lr: float,
    first_order: bool = False,
) -> Callable:
    """Jitted outer update (Alg. 2 line 10) with an optax optimiser (β is its learning rate).

    Returns ``step(params, opt_state, tasks_train, tasks_val) -> (params,
    opt_state, meta_loss)``, where ``meta_loss`` is evaluated at the incoming
    ``params`` (before the update). Initialise ``opt_state`` with
    ``optimizer.init(params)``.
    """

    @jax.jit
    def step(params, opt_state, tasks_train, tasks_val):
        loss, grads = jax.value_and_grad(meta_loss)(
            params, tasks_train, tasks_val, loss_fn, steps, lr, first_order
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, loss

    return step


def _check_interval(name: str, value, ndim_ok=(1, 2)) -> np.ndarray | None:
    """Concrete sanity checks (skipped for traced inputs)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return None
    if arr.ndim not in ndim_ok or arr.shape[-1] != 2 or arr.size == 0:
        raise ValueError(f"{name} must have shape (2,) or (K, 2); got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; got {arr}")
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0; got {arr}")
    if np.any(arr[..., 0] > arr[..., 1]):
        raise ValueError(f"{name} needs low <= high in every row; got {arr}")
    return arr


def sample_sgin_tasks(
    key: jax.Array,
    base_params: Any,
    num_tasks: int,
    arrival_ranges,
    v_range,
) -> Any:
    """Tasks Γ as arrival regimes: a batch of ``num_tasks`` env params.

    Args:
      key: PRNG key.
      base_params: a ``flax.struct`` params dataclass with (at least) the fields
        ``arrival_min_bits``, ``arrival_max_bits`` and ``v_weight``, e.g.
        ``jaxsg.make("sgin")[1]``.
      num_tasks: static batch size T.
      arrival_ranges: either shape (K, 2) — a table of K regimes
        ``[A_min, A_max]`` in bits, one drawn uniformly per task — or shape
        (2,) — bounds ``[lo, hi]`` from which two uniform draws are sorted into
        ``A_min <= A_max`` per task.
      v_range: ``(v_lo, v_hi)``; V is drawn uniformly per task.

    Returns:
      ``base_params`` with **every** leaf broadcast to a leading axis of T and
      the three fields replaced per task, ready for
      ``jax.vmap(env.reset, in_axes=(None, 0))`` or ``in_axes=0`` everywhere.
      All draws satisfy 0 <= A_min <= A_max and v_lo <= V <= v_hi.
    """
    _check_interval("arrival_ranges", arrival_ranges)
    _check_interval("v_range", v_range, ndim_ok=(1,))
    ranges = jnp.asarray(arrival_ranges, jnp.float32)
    v_range = jnp.asarray(v_range, jnp.float32)
    return _sample_sgin_tasks(key, base_params, int(num_tasks), ranges, v_range)


@functools.partial(jax.jit, static_argnums=2)
def _sample_sgin_tasks(key, base_params, num_tasks, ranges, v_range):
    k_regime, k_v = jax.random.split(key)
    if ranges.ndim == 2:
        idx = jax.random.randint(k_regime, (num_tasks,), 0, ranges.shape[0])
        a_min, a_max = ranges[idx, 0], ranges[idx, 1]
    else:
        u = jax.random.uniform(k_regime, (num_tasks, 2), minval=ranges[0], maxval=ranges[1])
        a_min, a_max = jnp.min(u, axis=-1), jnp.max(u, axis=-1)
    v = jax.random.uniform(k_v, (num_tasks,), minval=v_range[0], maxval=v_range[1])
    batch = jax.tree.map(
        lambda x: jnp.broadcast_to(jnp.asarray(x), (num_tasks,) + jnp.shape(x)), base_params
    )
    return batch.replace(arrival_min_bits=a_min, arrival_max_bits=a_max, v_weight=v)
