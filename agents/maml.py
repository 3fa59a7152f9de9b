"""MAML with a differentiable inner loop (SGIN paper Sec. IV-B(1), eq. 31-32, Alg. 2):
w' = w − α∇_w L_Γ(w) (K steps), w ← w − β∇_w Σ_Γ L_Γ(w') through the inner loop, for any
``loss_fn(params, task) -> scalar``; a task batch has a leading task axis on every leaf.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from agents import core

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
    """``steps`` SGD steps p ← p − lr·∇_p loss_fn(p, task) in a ``lax.scan`` (``lr`` may be
    traced); ``first_order=True`` stops the inner gradient (FOMAML), same adapted params."""
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
    """Eq. 31: mean over tasks Γ of loss_fn(adapt(params, Γ_train), Γ_val); the task
    batches (leading task axis, equal lengths) are vmapped."""

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
    """Jitted outer update (Alg. 2 line 10; β is the optax ``optimizer``'s learning rate):
    ``step(params, opt_state, tasks_train, tasks_val) -> (params, opt_state, meta_loss)``,
    ``meta_loss`` at the incoming ``params``; ``opt_state = optimizer.init(params)``."""

    @jax.jit
    def step(params, opt_state, tasks_train, tasks_val):
        loss, grads = jax.value_and_grad(meta_loss)(
            params, tasks_train, tasks_val, loss_fn, steps, lr, first_order
        )
        return (*core.opt_step(optimizer, params, opt_state, grads), loss)

    return step
