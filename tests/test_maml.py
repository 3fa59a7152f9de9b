"""MAML (agents/maml.py): exact second-order meta-gradients, fast adaptation, SGIN task sampling."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from agents import maml

# --------------------------------------------------------------------------
# (1) meta-gradient of a tiny quadratic problem
# --------------------------------------------------------------------------
# loss(θ, task) = ½ (θ − a)ᵀ A (θ − a) with θ = (w[0], w[1], b), SPD A per task.
# K SGD steps: θ_K − a_tr = M (θ − a_tr), M = (I − αA_tr)^K (symmetric), so
#   second order: ∇_θ L_val(θ_K) = M A_val (θ_K − a_val)
#   first order:  A_val (θ_K − a_val)


def _theta(params):
    return jnp.concatenate([params["w"], params["b"][None]])


def quad_loss(params, task):
    d = _theta(params) - task["a"]
    return 0.5 * d @ task["A"] @ d


def _quad_tasks(rng, n, dtype):
    q = rng.normal(size=(n, 3, 3))
    a_mat = np.einsum("nij,nkj->nik", q, q) + 0.5 * np.eye(3)
    return {"A": a_mat.astype(dtype), "a": rng.normal(size=(n, 3)).astype(dtype)}


def _analytic(theta, tr, va, steps, lr):
    grads_so, grads_fo = [], []
    for i in range(tr["a"].shape[0]):
        m = np.linalg.matrix_power(np.eye(3) - lr * tr["A"][i], steps)
        theta_k = tr["a"][i] + m @ (theta - tr["a"][i])
        g_fo = va["A"][i] @ (theta_k - va["a"][i])
        grads_fo.append(g_fo)
        grads_so.append(m.T @ g_fo)
    return np.mean(grads_so, 0), np.mean(grads_fo, 0)


def test_second_order_meta_gradient_matches_analytic_and_finite_differences():
    steps, lr, eps = 3, 0.15, 1e-4
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        tr, va = _quad_tasks(rng, 4, np.float64), _quad_tasks(rng, 4, np.float64)
        theta0 = rng.normal(size=3)
        params = {"w": jnp.asarray(theta0[:2]), "b": jnp.asarray(theta0[2])}

        def loss_of(p, first_order):
            return maml.meta_loss(p, tr, va, quad_loss, steps, lr, first_order)

        grad = jax.jit(jax.grad(loss_of), static_argnums=1)
        g_so = np.asarray(_theta(grad(params, False)))
        g_fo = np.asarray(_theta(grad(params, True)))
        assert g_so.dtype == np.float64

        # Central finite differences of the meta-loss itself.
        f = jax.jit(lambda t: loss_of({"w": t[:2], "b": t[2]}, False))
        fd = np.array([
            (float(f(theta0 + eps * e)) - float(f(theta0 - eps * e))) / (2 * eps) for e in np.eye(3)
        ])
        a_so, a_fo = _analytic(theta0, tr, va, steps, lr)

    np.testing.assert_allclose(g_so, a_so, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(g_so, fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(g_fo, a_fo, rtol=1e-9, atol=1e-10)
    # The first-order approximation is genuinely different on this problem.
    assert np.linalg.norm(g_so - g_fo) > 0.1 * np.linalg.norm(g_so)


def test_adapt_basics():
    rng = np.random.default_rng(1)
    tasks = _quad_tasks(rng, 1, np.float32)
    task = jax.tree.map(lambda x: x[0], tasks)
    params = {"w": jnp.zeros(2), "b": jnp.zeros(())}
    # 0 steps is the identity; forward values do not depend on first_order.
    chex.assert_trees_all_equal(maml.adapt(params, task, quad_loss, 0, 0.1), params)
    run = jax.jit(maml.adapt, static_argnums=(2, 3, 5))
    so = run(params, task, quad_loss, 2, 0.05, False)
    fo = run(params, task, quad_loss, 2, 0.05, True)
    chex.assert_trees_all_close(so, fo)
    # Two hand-written SGD steps.
    th = np.zeros(3)
    for _ in range(2):
        th = th - 0.05 * task["A"] @ (th - task["a"])
    np.testing.assert_allclose(_theta(so), th, rtol=1e-5, atol=1e-6)
    # A traced learning rate (swept hyperparameter) gives the same result.
    lr_run = jax.jit(lambda lr: maml.adapt(params, task, quad_loss, 2, lr))
    chex.assert_trees_all_close(lr_run(jnp.float32(0.05)), so, rtol=1e-6)
    with pytest.raises(ValueError, match="steps"):
        maml.adapt(params, task, quad_loss, -1, 0.1)


# --------------------------------------------------------------------------
# (2, 3) few-shot sinusoid regression with a flax MLP
# --------------------------------------------------------------------------


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.tanh(nn.Dense(32)(x))
        x = nn.tanh(nn.Dense(32)(x))
        return nn.Dense(1)(x)


NET = MLP()
SUPPORT = 10


def reg_loss(params, task):
    pred = NET.apply(params, task["x"])
    return jnp.mean((pred - task["y"]) ** 2)


def _sine_tasks(rng, n):
    """Support (train) and query (val) sets of n tasks y = amp·sin(x + phase)."""
    amp = rng.uniform(0.5, 2.0, size=(n, 1, 1))
    phase = rng.uniform(0.0, np.pi, size=(n, 1, 1))

    def draw():
        x = rng.uniform(-5.0, 5.0, size=(n, SUPPORT, 1))
        return {"x": x.astype(np.float32), "y": (amp * np.sin(x + phase)).astype(np.float32)}

    return draw(), draw()


def test_meta_training_lowers_meta_loss_and_one_step_adapts_on_held_out_tasks():
    inner_lr, steps, meta_batch, outer_steps = 0.05, 1, 10, 400
    rng = np.random.default_rng(0)
    params0 = jax.jit(NET.init)(jax.random.PRNGKey(0), jnp.zeros((1, 1)))
    opt = optax.adam(3e-3)
    train_step = maml.make_meta_train_step(reg_loss, opt, steps, inner_lr)

    # Pre-sample every meta-batch and scan the outer loop (one compile, no Python dispatch).
    tr, va = _sine_tasks(rng, outer_steps * meta_batch)
    split = lambda t: jax.tree.map(lambda x: x.reshape((outer_steps, meta_batch) + x.shape[1:]), t)

    @jax.jit
    def train(params):
        def body(carry, batch):
            p, s = carry
            p, s, loss = train_step(p, s, *batch)
            return (p, s), loss

        (p, _), losses = jax.lax.scan(body, (params, opt.init(params)), (split(tr), split(va)))
        return p, losses

    params, losses = train(params0)
    assert np.all(np.isfinite(losses))

    held_tr, held_va = _sine_tasks(np.random.default_rng(123), 100)

    @jax.jit
    def evaluate(p):  # query loss before adaptation and after one inner step
        return jnp.stack([maml.meta_loss(p, held_tr, held_va, reg_loss, k, inner_lr)
                          for k in (0, 1)])

    (_, init_meta), (before, after) = np.asarray(jax.vmap(evaluate)(
        jax.tree.map(lambda a, b: jnp.stack([a, b]), params0, params)))
    # (3) Meta-training lowers the post-adaptation (meta) loss on held-out tasks.
    assert after < 0.5 * init_meta, (init_meta, after)
    assert float(losses[-50:].mean()) < 0.5 * float(losses[:50].mean())
    # (2) On held-out tasks, one inner step on the support set lowers the query loss.
    assert after < 0.8 * before, (before, after)


def test_first_order_meta_train_step_runs():
    opt = optax.sgd(1e-2)
    params = {"w": jnp.zeros(2), "b": jnp.zeros(())}
    tr, va = _quad_tasks(np.random.default_rng(2), 8, np.float32), _quad_tasks(
        np.random.default_rng(3), 8, np.float32)
    step = maml.make_meta_train_step(quad_loss, opt, 2, 0.05, first_order=True)
    state = opt.init(params)
    losses = []
    for _ in range(5):
        params, state, loss = step(params, state, tr, va)
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    chex.assert_trees_all_equal_shapes(params, {"w": jnp.zeros(2), "b": jnp.zeros(())})
