"""Lyapunov virtual queues and the drift-plus-penalty reward.

Pure ``jax.numpy`` kernels: jit-able, vmap-able, broadcasting over leading
axes, differentiable almost everywhere (piecewise linear in ``served``).
Units are whatever the caller's queue is counted in (bits in the SGIN
scenario); the kernels are unit-agnostic as long as ``q``, ``served`` and
``arrivals`` share one unit.

Source: Gong et al., "Stackelberg game ... MAML-MADFRL" (IEEE TCOM 2024,
arXiv 2302.08525), eq. 16 (serve no more than is queued), eq. 23 (queue
update), eq. 27-30/33 (drift-plus-penalty objective / reward).
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxsg.physics.units import _as_float

__all__ = [
    "drift_plus_penalty_reward",
    "lyapunov",
    "lyapunov_drift",
    "queue_update",
]


def queue_update(q, served, arrivals):
    """One slot of the Lyapunov virtual queue.

    Equation::

        served_eff = min(max(served, 0), max(q, 0))
        q_next     = max(q, 0) - served_eff + arrivals
                   = max(q - served, 0) + arrivals          (for q >= 0, served >= 0)

    Source: SGIN paper eq. 23 with constraint 16 (a DT never processes more
    bits than it has queued), as fixed in ``docs/physics.md``.

    Decisions where the paper is silent or differs:

    * The paper's eq. 23 prints ``Q' = max(Q - D + A, 0)``, i.e. arrivals of
      this slot can be served in the same slot. We follow the spec /
      constraint 16: only what is queued at the start of the slot can be
      served, arrivals join afterwards (the standard Lyapunov-queue form).
    * ``served`` is clipped at 0 from below (a negative service is not an
      arrival) and at ``q`` from above.
    * A negative ``q`` (invalid input) is treated as an empty queue, so the
      result is non-negative whenever ``arrivals >= 0``. ``arrivals`` is *not*
      clipped: it is the caller's responsibility to pass ``arrivals >= 0``.

    Args:
      q: current backlog, any shape (unit: e.g. bits).
      served: service capacity this slot (``D`` in the paper), same unit,
        broadcastable against ``q``.
      arrivals: new arrivals this slot (``A``), same unit, broadcastable.

    Returns:
      ``(q_next, served_effective)``, both with the broadcast shape of the
      inputs and a floating dtype.

    Gradients: d q_next / d q = 1 if ``served < q`` else 0; d q_next / d served
    = -1 if ``0 < served < q`` else 0; d q_next / d arrivals = 1. At the kinks
    (``served == q`` or ``served == 0``) JAX's min/max convention applies.
    """
    q = _as_float(q)
    served = _as_float(served)
    arrivals = _as_float(arrivals)
    q_pos = jnp.maximum(q, 0.0)
    served_eff = jnp.minimum(jnp.maximum(served, 0.0), q_pos)
    q_next = q_pos - served_eff + arrivals
    return q_next, served_eff


def lyapunov(q, axis=-1):
    """Quadratic Lyapunov function L(Q) = 1/2 · Σ Q².

    Source: SGIN paper, Lyapunov function before eq. 24-27 (standard
    quadratic form).

    Decision: the sum runs over ``axis`` (default the last axis, the queue /
    agent axis), so leading batch axes survive: ``q`` of shape ``(B, N)``
    gives ``(B,)``. Pass ``axis=None`` to sum over everything, or a tuple.

    Units: (queue unit)², e.g. bits².
    """
    q = _as_float(q)
    return 0.5 * jnp.sum(jnp.square(q), axis=axis)


def lyapunov_drift(q, q_next, axis=-1):
    """One-slot Lyapunov drift Δ = L(Q(t+1)) − L(Q(t)) (SGIN eq. 24-25), summed over ``axis``."""
    return lyapunov(q_next, axis=axis) - lyapunov(q, axis=axis)


def drift_plus_penalty_reward(q, served, utility, v):
    """Per-agent drift-plus-penalty reward  R = Q·D + V·F.

    Source: SGIN paper eq. 30 (objective of P2') and eq. 33 (the follower
    reward). Maximising Q·D + V·F per slot minimises an upper bound of the
    drift-minus-utility  Δ − V·F  (eq. 27-29).

    Elementwise and broadcasting: ``q``, ``served``, ``utility`` and ``v``
    broadcast against each other; no reduction is done.

    Decision: ``served`` is used as given. The paper (and the SGIN spec) use
    the *capacity* ``D`` (not ``min(D, Q)``) here, so pass the capacity to be
    literal, or ``served_effective`` from :func:`queue_update` for the
    clipped variant. Units are the caller's (the SGIN env uses Mbit for Q and
    D and the utility's own units); the kernel does no scaling.
    """
    q = _as_float(q)
    served = _as_float(served)
    utility = _as_float(utility)
    v = _as_float(v)
    return q * served + v * utility
