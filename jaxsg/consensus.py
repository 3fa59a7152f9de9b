"""Blockchain / consensus overhead kernels.

Pure ``jax.numpy`` functions: jit-able, vmap-able, broadcasting over leading
axes, differentiable in their continuous arguments, SI units (bits, Hz =
CPU cycles per second, bit/s, seconds). float32 by default (x64 is never
enabled here); integer inputs are promoted to float32 where they enter a
formula.

Contents
--------
SGIN (Gong et al., IEEE TCOM 2024, arXiv 2302.08525, eq. 7-10)
    :func:`sgin_privacy_overhead`
DTWN edge association (Lu et al., IEEE TII 2021, arXiv 2011.09902, eq. 6, 12-17)
    :func:`dpos_stakes`, :func:`dpos_tally`, :func:`dpos_elect`, :func:`dpos_award`,
    :func:`dpos_verify`, :func:`dpos_majority`,
    :func:`dtwn_bs_load`, :func:`dtwn_compute_time`, :func:`dtwn_local_agg_time`,
    :func:`dtwn_transmit_time`, :func:`dtwn_block_validation_time`,
    :func:`dtwn_round_time`
LEO spectrum pricing (Shen et al., arXiv 2407.00814 v2, Sec. IV-D, eq. 20-22)
    :func:`reputation_update`, :func:`select_aggregator`, :func:`reputation_reset`
PBFT (Castro & Liskov 1999), for the consensus-comparison experiments
    :func:`pbft_messages`, :func:`pbft_latency`

Axis conventions
----------------
* "Per node" arrays (per BS, per satellite, per verifier) carry the node
  axis **last**: shape ``(..., M)``. Reductions over nodes (max, top-k,
  argmax) are over the last axis; leading axes are batch axes.
* "Verifier" arguments (``f_verify_hz`` in :func:`sgin_privacy_overhead`,
  ``f_verify_hz`` and ``r_down_bps`` in :func:`dtwn_block_validation_time`)
  are reduced with a max over their trailing axis ("gated by the slowest
  verifier"). A scalar is accepted and means one verifier (or all verifiers
  equal). Consequence: a 1-D array is always read as a verifier axis, so a
  *batch* of single-verifier values must be passed with shape ``(B, 1)``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxsg.physics.units import _as_float

__all__ = [
    "DTWNRoundTime",
    "PBFTLatency",
    "SGINPrivacyOverhead",
    "dpos_award",
    "dpos_elect",
    "dpos_stakes",
    "dpos_majority",
    "dpos_tally",
    "dpos_verify",
    "dtwn_block_validation_time",
    "dtwn_bs_load",
    "dtwn_compute_time",
    "dtwn_local_agg_time",
    "dtwn_round_time",
    "dtwn_transmit_time",
    "pbft_latency",
    "pbft_messages",
    "reputation_reset",
    "reputation_update",
    "select_aggregator",
    "sgin_privacy_overhead",
]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _safe_div_time(bits, rate):
    """``bits / rate`` with 0 where ``bits == 0`` (even if ``rate == 0``).

    ``bits > 0`` with ``rate == 0`` gives ``inf`` (the transfer never ends);
    gradients are finite wherever the result is.
    """
    has = bits > 0
    return jnp.where(has, bits / jnp.where(has, rate, 1.0), 0.0)


def _max_over_verifiers(times, mask=None):
    """Max over the trailing verifier axis; masked-out verifiers count as 0 s.

    ``times`` must already have the trailing axis. With a mask that selects
    nobody the result is 0.
    """
    if mask is not None:
        times = jnp.where(jnp.asarray(mask, bool), times, 0.0)
    return jnp.max(times, axis=-1)


# ---------------------------------------------------------------------------
# SGIN: privacy (sharding-blockchain) overhead, eq. 7-10
# ---------------------------------------------------------------------------


class SGINPrivacyOverhead(NamedTuple):
    """C1, C2, C3 and C_SBC = C1 + C2 + C3 of SGIN eq. 7-10, in seconds."""

    c1: jax.Array
    c2: jax.Array
    c3: jax.Array
    total: jax.Array


def sgin_privacy_overhead(
    model_bits,
    f_mbs_hz,
    delta,
    num_mbs,
    num_dt_total,
    r_up_bps,
    r_down_bps,
    block_bits,
    f_verify_hz,
    verify_cycles_per_bit=1.0,
    verifier_mask=None,
):
    """Privacy overhead of the sharding blockchain of one MBS (SGIN eq. 7-10).

    Equations (Gong et al., arXiv 2302.08525)::

        C1 = |W| / f_MBS                                              (7)
        C2 = δ · log2(N) · |W| / r_up                                 (8)
        C3 = δ · log2(M·N) · S_B / r_down + max_m S_B · v / f_{n,m}   (9)
        C_SBC = C1 + C2 + C3                                          (10)

    Units: ``model_bits`` |W| and ``block_bits`` S_B in bits, ``f_mbs_hz``
    and ``f_verify_hz`` in CPU cycles/s, ``r_up_bps``/``r_down_bps`` in
    bit/s, ``verify_cycles_per_bit`` v in cycles/bit; results in seconds.

    Decisions where the paper is silent or loose:

    * Eq. 7 divides bits by Hz, i.e. aggregation costs 1 CPU cycle per bit;
      we keep that literally (no extra cycles-per-bit factor on C1).
    * Eq. 9 prints ``S_B / f`` for verification; we add the cycles-per-bit
      factor ``v`` (default 1.0, which reproduces the paper).
    * Verification is gated by the slowest verifier: ``f_verify_hz`` has a
      **trailing verifier axis** ``(..., V)`` (the DTs of the MBS that
      validate the block) and the max over that axis of ``S_B·v/f`` is
      taken. A scalar ``f_verify_hz`` means a single verifier. A batch of
      single verifiers must be shaped ``(B, 1)``. ``verifier_mask`` (bool,
      ``(..., V)``, optional) excludes verifiers; if it excludes all of them
      the verification term is 0.
    * ``num_mbs`` = N (shards / MBSs) and ``num_dt_total`` = M·N (all DTs);
      both may be traced numbers. N = 1 gives C2 = 0 (nobody to broadcast to).
    * All other arguments broadcast over leading axes; ``block_bits`` and
      ``verify_cycles_per_bit`` carry no verifier axis (one block per MBS).

    Test value (``docs/physics.md``): |W| = 1e6, f_MBS = 6e9, δ = 0.5, N = 4,
    M·N = 48, r_up = 5e9, r_down = 1e10, S_B = 4e6, f = 2e9 →
    C1 = 1.667e-4, C2 = 2.0e-4, C3 = 3.117e-3, total = 3.484e-3 s.

    Returns:
      :class:`SGINPrivacyOverhead` ``(c1, c2, c3, total)`` (a tuple), every
      field broadcast to the common batch shape of the inputs.
    """
    w = _as_float(model_bits)
    f_mbs = _as_float(f_mbs_hz)
    delta = _as_float(delta)
    n = _as_float(num_mbs)
    mn = _as_float(num_dt_total)
    r_up = _as_float(r_up_bps)
    r_down = _as_float(r_down_bps)
    s_b = _as_float(block_bits)
    v = _as_float(verify_cycles_per_bit)
    f_ver = jnp.atleast_1d(_as_float(f_verify_hz))

    c1 = w / f_mbs
    c2 = delta * jnp.log2(n) * w / r_up
    verify = _max_over_verifiers(jnp.expand_dims(s_b * v, -1) / f_ver, verifier_mask)
    c3 = delta * jnp.log2(mn) * s_b / r_down + verify
    total = c1 + c2 + c3
    # every part gets the common (batch) shape, so the tuple stacks cleanly
    return SGINPrivacyOverhead(*(jnp.broadcast_to(x, total.shape) for x in (c1, c2, c3, total)))


# ---------------------------------------------------------------------------
# DTWN: DPoS with training coins (eq. 6)
# ---------------------------------------------------------------------------


def dpos_stakes(data_per_bs, s_ini):
    """Initial training coins S_i = D_i / Σ_k D_k · S_ini (DTWN eq. 6).

    ``data_per_bs`` (..., M): amount of DT data held by each BS (samples or
    bits — only ratios matter; use :func:`dtwn_bs_load` to get it from an
    association). ``s_ini`` broadcasts against the leading axes (no BS axis).
    Returns coins of shape (..., M) summing to ``s_ini``.

    Decision (paper silent): if no BS holds any data the coins are split
    equally (S_ini / M each), keeping Σ S_i = S_ini and avoiding 0/0.
    """
    d = _as_float(data_per_bs)
    s_ini = jnp.expand_dims(_as_float(s_ini), -1)
    total = jnp.sum(d, axis=-1, keepdims=True)
    m = d.shape[-1]
    share = jnp.where(total > 0, d / jnp.where(total > 0, total, 1.0), 1.0 / m)
    return share * s_ini


def dpos_tally(votes, stakes):
    """Stake-weighted vote tally: T_m = Σ_v S_v · votes[v, m].

    ``votes`` (..., V, M): ballot of voter v for candidate m (0/1 approval
    or a fraction of v's coins; the paper does not fix the ballot form).
    ``stakes`` (..., V): voters' coins. Returns (..., M).
    """
    votes = _as_float(votes)
    stakes = _as_float(stakes)
    return jnp.sum(jnp.expand_dims(stakes, -1) * votes, axis=-2)


def dpos_elect(votes, num_producers, stakes=None):
    """Elect the ``num_producers`` block producers: top-k of the stake-weighted votes.

    Source: DTWN paper Sec. II-C ("all the BSs vote for the candidate BSs by
    using their own training coins"; the top M_p become block producers).

    Args:
      votes: either the stake-weighted tally per candidate, shape (..., M)
        (when ``stakes`` is None), or a ballot matrix (..., V, M) that is
        weighted by ``stakes`` (..., V) via :func:`dpos_tally`.
      num_producers: k = M_p, a static Python int, 1 ≤ k ≤ M.
      stakes: optional voters' coins, see above.

    Returns:
      ``(indices, mask)``: ``indices`` int32 (..., k), the elected candidates
      in decreasing tally order; ``mask`` bool (..., M), True for elected.

    Decision (paper silent): ties are broken towards the lower index
    (``lax.top_k`` semantics), so the election is deterministic. Not
    differentiable (a selection); differentiate the tally instead.
    """
    tally = _as_float(votes) if stakes is None else dpos_tally(votes, stakes)
    k = int(num_producers)
    m = tally.shape[-1]
    if not 1 <= k <= m:
        raise ValueError(f"num_producers must be in [1, {m}], got {k}")
    _, idx = lax.top_k(tally, k)
    mask = jnp.any(jax.nn.one_hot(idx, m, dtype=jnp.bool_), axis=-2)
    return idx.astype(jnp.int32), mask


def dpos_award(coins, verified, reward):
    """Coins after a verification round: +reward for each verified BS, 0 otherwise.

    DTWN Sec. II-C: a BS whose model passes verification is awarded coins,
    otherwise it "will get no pay". The paper gives no amount; ``reward`` is
    a parameter (broadcasts; may be per BS). ``verified`` is bool or 0/1.
    """
    return _as_float(coins) + _as_float(reward) * _as_float(verified)


def dpos_verify(candidate_loss, reference_loss, tol):
    """Each producer's check of each BS update on the producer's OWN held-out data.

    DTWN Sec. II-C: the producers verify the local models recorded as transactions.
    ``candidate_loss`` (..., V, B): loss of BS b's update on verifier v's held-out data;
    ``reference_loss`` (..., V): loss of the previous global model on the same data;
    ``tol`` (absolute, same unit as the losses) broadcasts. Returns bool (..., V, B):
    v accepts b iff ``candidate_loss <= reference_loss + tol`` (decision: the paper gives
    no test; "does not make the global model worse on my data, up to tol"). A NaN loss is
    rejected.
    """
    cand = _as_float(candidate_loss)
    ref = jnp.expand_dims(_as_float(reference_loss), -1)
    return cand <= ref + _as_float(tol)


def dpos_majority(accept, producer_mask):
    """Updates included by the block producers: strict majority of the producers accept.

    ``accept`` bool (..., V, B): verifier v's verdict on update b (e.g. :func:`dpos_verify`,
    possibly overridden by colluders); ``producer_mask`` bool (..., V): the elected
    producers (:func:`dpos_elect`); non-producers' verdicts are ignored. Returns bool
    (..., B): included iff 2·#accepting producers > #producers (decision: strict
    majority, so with 2 producers both must accept; no producer → nothing included).
    """
    votes = jnp.asarray(accept, bool) & jnp.expand_dims(jnp.asarray(producer_mask, bool), -1)
    n_yes = jnp.sum(votes.astype(jnp.int32), axis=-2)
    n_prod = jnp.sum(jnp.asarray(producer_mask, jnp.int32), axis=-1, keepdims=True)
    return 2 * n_yes > n_prod


# ---------------------------------------------------------------------------
# DTWN: per-round time cost (eq. 12-17)
# ---------------------------------------------------------------------------


def dtwn_bs_load(assoc, batch_frac, data_samples, num_bs):
    """Per-BS load from a DT → BS association.

    Args:
      assoc: int (..., N), index of the BS hosting each user's DT. An index
        outside ``[0, num_bs)`` (e.g. -1) means "not associated": the DT
        counts nowhere.
      batch_frac: b_j (..., N), fraction of D_j trained this round.
      data_samples: D_j (..., N), samples held by DT j.
      num_bs: M, static int.

    Returns:
      ``(trained_samples, num_dts, data_per_bs)``, each (..., M) float:
      Σ_{j∈i} b_j·D_j (eq. 12 numerator), K_i, and Σ_{j∈i} D_j (eq. 6).
      Differentiable in ``batch_frac`` and ``data_samples``.
    """
    oh = jax.nn.one_hot(assoc, num_bs, dtype=jnp.float32)
    b = _as_float(batch_frac)
    d = _as_float(data_samples)
    trained = jnp.sum(jnp.expand_dims(b * d, -1) * oh, axis=-2)
    k = jnp.sum(oh, axis=-2)
    data = jnp.sum(jnp.expand_dims(d, -1) * oh, axis=-2)
    return trained, k, data


def dtwn_compute_time(trained_samples, f_cpu_hz, cycles_per_sample):
    """Local training time of each BS, T_i^cmp = Σ_j b_j D_j · f^C / f_i^C (DTWN eq. 12).

    ``trained_samples`` Σ_j b_j D_j (samples), ``cycles_per_sample`` f^C
    (cycles/sample), ``f_cpu_hz`` f_i^C (cycles/s) → seconds, elementwise.
    """
    return _as_float(trained_samples) * _as_float(cycles_per_sample) / _as_float(f_cpu_hz)


def dtwn_local_agg_time(num_dts, f_cpu_hz, model_bits, agg_cycles_per_bit):
    """Local aggregation time of each BS, T_i^la = K_i·|w_g|·f_b^C / f_i^C (DTWN eq. 14).

    Decision: f_b^C ("cycles to aggregate one unit of data") is taken per
    bit of model, so ``model_bits`` |w_g| in bits, ``agg_cycles_per_bit`` in
    cycles/bit, ``f_cpu_hz`` in cycles/s → seconds. Elementwise.
    """
    return (
        _as_float(num_dts) * _as_float(model_bits) * _as_float(agg_cycles_per_bit)
        / _as_float(f_cpu_hz)
    )


def dtwn_transmit_time(num_dts, r_up_bps, model_bits, xi, num_bs):
    """Transaction broadcast time of each BS (DTWN eq. 15).

    T_i^pt = ξ·log2(M)·K_i·|w_g| / R_i^U.

    Units: bits / (bit/s) → s; ξ dimensionless; ``num_bs`` M the size of the
    BS network. Elementwise.

    Decisions: a BS with K_i = 0 (or M = 1) sends nothing and takes 0 s even
    if its rate is 0; a BS with K_i > 0 and R_i^U = 0 takes ``inf``.
    (Eq. 15 multiplies the model by K_i as printed, although the BS
    uploads one aggregated model; we keep the paper.)
    """
    bits = (
        _as_float(xi) * jnp.log2(_as_float(num_bs)) * _as_float(num_dts)
        * _as_float(model_bits)
    )
    return _safe_div_time(bits, _as_float(r_up_bps))


def dtwn_block_validation_time(
    block_bits,
    r_down_bps,
    f_verify_hz,
    xi,
    num_producers,
    verify_cycles_per_bit=1.0,
    producer_mask=None,
):
    """Block broadcast and verification time (DTWN eq. 16).

    Equation::

        T^bv = max_i ξ·log2(M_p)·S_B / R_i^D  +  max_i S_B·f^v / f_i^S

    Returns ``(t_broadcast, t_verify)`` in seconds; T^bv is their sum.

    Decisions (eq. 16 leaves ``i`` free in the first term):

    * ``r_down_bps`` and ``f_verify_hz`` both have a **trailing verifier
      axis** (..., V) and are reduced with a max (the slowest producer link
      and the slowest verifier gate the round). Scalars mean one value for
      every producer. A batch of scalars must be shaped (B, 1).
    * ``producer_mask`` (bool (..., V), optional — e.g. the mask returned by
      :func:`dpos_elect` when the trailing axis is all M BSs) restricts both
      maxima to the producers. If None, every entry counts.
    * ``block_bits`` S_B (bits), ``xi`` ξ, ``num_producers`` M_p and
      ``verify_cycles_per_bit`` f^v (cycles/bit) broadcast over the leading
      axes only (no verifier axis). M_p = 1 gives zero broadcast time.
    """
    s_b = _as_float(block_bits)
    bcast_bits = _as_float(xi) * jnp.log2(_as_float(num_producers)) * s_b
    r_down = jnp.atleast_1d(_as_float(r_down_bps))
    f_ver = jnp.atleast_1d(_as_float(f_verify_hz))
    t_b = _max_over_verifiers(
        _safe_div_time(jnp.expand_dims(bcast_bits, -1), r_down), producer_mask
    )
    cyc = s_b * _as_float(verify_cycles_per_bit)
    t_v = _max_over_verifiers(jnp.expand_dims(cyc, -1) / f_ver, producer_mask)
    return t_b, t_v


class DTWNRoundTime(NamedTuple):
    """Phases of one DTWN global round (eq. 12-17), each already maxed over BSs, seconds."""

    compute: jax.Array  # max_i T_i^cmp (eq. 12)
    local_agg: jax.Array  # max_i T_i^la (eq. 14); 0 if include_local_agg=False
    transmit: jax.Array  # max_i T_i^pt (eq. 15)
    block_broadcast: jax.Array  # ξ log2 M_p S_B / R^D (eq. 16, first term)
    block_verify: jax.Array  # max_i S_B f^v / f_i^S (eq. 16, second term)
    total: jax.Array  # T (eq. 17, plus local_agg)


def dtwn_round_time(
    trained_samples,
    num_dts,
    f_cpu_hz,
    r_up_bps,
    r_down_bps,
    f_verify_hz,
    block_bits,
    cycles_per_sample,
    agg_cycles_per_bit,
    model_bits,
    xi,
    num_producers=None,
    verify_cycles_per_bit=1.0,
    num_bs=None,
    producer_mask=None,
    include_local_agg=True,
):
    """Time cost of one DTWN federated-learning round (DTWN eq. 12-17).

    Equation (eq. 17 plus the local-aggregation phase, eq. 14)::

        T = max_i T_i^cmp + max_i T_i^la + max_i T_i^pt
            + max_i ξ log2(M_p) S_B / R_i^D + max_i S_B f^v / f_i^S

    with T_i^cmp = Σ_{j∈i} b_j D_j f^C / f_i^C (12), T_i^la = K_i |w_g| f_b^C /
    f_i^C (14), T_i^pt = ξ log2(M) K_i |w_g| / R_i^U (15), block term (16).

    Args (per-BS arrays carry the BS axis last, (..., M)):
      trained_samples: Σ_{j∈i} b_j·D_j per BS (samples); see :func:`dtwn_bs_load`.
      num_dts: K_i per BS.
      f_cpu_hz: f_i^C per BS (cycles/s), used for training and aggregation.
      r_up_bps: R_i^U per BS (bit/s), eq. 7 (computed by the caller).
      r_down_bps, f_verify_hz: R_i^D and f_i^S, trailing verifier axis, see
        :func:`dtwn_block_validation_time` (scalar allowed).
      block_bits: S_B (bits). cycles_per_sample: f^C. agg_cycles_per_bit: f_b^C.
      model_bits: |w_g| (bits). xi: ξ. verify_cycles_per_bit: f^v.
      num_producers: M_p; if None, the number of True entries of
        ``producer_mask`` (one of the two is required).
      num_bs: M in log2 M of eq. 15; if None, the size of the trailing axis
        of the broadcast per-BS arrays (static).
      producer_mask: optional bool (..., V) restricting the block-phase maxima
        to the elected producers (e.g. from :func:`dpos_elect`).
      include_local_agg: static bool. The paper drops eq. 14 as small; the
        spec keeps it (default True). False reproduces eq. 17 literally.

    Decisions:

    * Phases are synchronous, as eq. 17 is written: each phase is a max over
      BSs and the phases add. The local aggregation phase (kept per spec) is
      its own max-phase between training and transmission.
    * A BS with no DT (K_i = 0) contributes 0 to every per-BS phase.

    Returns:
      :class:`DTWNRoundTime` (compute, local_agg, transmit, block_broadcast,
      block_verify, total), each broadcast to the common leading (batch)
      shape, in seconds.
    """
    trained = _as_float(trained_samples)
    k = _as_float(num_dts)
    f_cpu = _as_float(f_cpu_hz)
    r_up = _as_float(r_up_bps)
    shape = jnp.broadcast_shapes(trained.shape, k.shape, f_cpu.shape, r_up.shape)
    if num_bs is None:
        if len(shape) == 0:
            raise ValueError("num_bs is required when every per-BS argument is a scalar")
        num_bs = shape[-1]
    if num_producers is None:
        if producer_mask is None:
            raise ValueError("give num_producers or producer_mask")
        num_producers = jnp.sum(jnp.asarray(producer_mask, jnp.float32), axis=-1)

    def per_bs_max(x):
        return jnp.max(jnp.atleast_1d(jnp.broadcast_to(x, shape)), axis=-1)

    t_cmp = per_bs_max(dtwn_compute_time(trained, f_cpu, cycles_per_sample))
    if include_local_agg:
        t_la = per_bs_max(dtwn_local_agg_time(k, f_cpu, model_bits, agg_cycles_per_bit))
    else:
        t_la = jnp.zeros_like(t_cmp)
    t_pt = per_bs_max(dtwn_transmit_time(k, r_up, model_bits, xi, num_bs))
    t_b, t_v = dtwn_block_validation_time(
        block_bits, r_down_bps, f_verify_hz, xi, num_producers,
        verify_cycles_per_bit, producer_mask,
    )
    total = t_cmp + t_la + t_pt + t_b + t_v
    parts = (t_cmp, t_la, t_pt, t_b, t_v, total)
    # every phase gets the common (batch) shape, so the tuple stacks cleanly
    return DTWNRoundTime(*(jnp.broadcast_to(x, total.shape) for x in parts))


# ---------------------------------------------------------------------------
# LEO spectrum paper: reputation-based aggregator election (Sec. IV-D)
# ---------------------------------------------------------------------------


def reputation_update(rep, n_normal, n_malicious, coeff, penalty_coeff=None):
    """Reputation token update of each satellite (spectrum paper eq. 20-22, (R)).

    (R) Reconstructed: our copy of the paper lost eq. 20-22. From the prose
    ("if there are no users with malicious behaviour in this access round
    the tokens are the original plus the newly acquired ones; if there is a
    malicious user, the original minus the penalty") and ``docs/spectrum.md``::

        R' = R + β·n_normal        if n_malicious == 0
        R' = R − β'·n_malicious    otherwise

    with β = ``coeff`` (the "reputation coefficient") and β' =
    ``penalty_coeff`` (defaults to β; the paper uses one coefficient).
    n_normal counts the leasing users whose power is below the satellite's
    power-control level (that is where the power level of eq. 21-22 enters);
    n_malicious the users that violated it.

    Decisions: no floor or cap (reputation may go negative); in a malicious
    round the normal users earn nothing. Elementwise and broadcasting
    (per satellite, any leading axes); counts may be int or float.
    Differentiable in ``rep`` and the coefficients.
    """
    rep = _as_float(rep)
    n_normal = _as_float(n_normal)
    n_mal = _as_float(n_malicious)
    coeff = _as_float(coeff)
    pen = coeff if penalty_coeff is None else _as_float(penalty_coeff)
    return rep + jnp.where(n_mal > 0, -pen * n_mal, coeff * n_normal)


def select_aggregator(rep, online):
    """Index of the online node with the highest reputation (spectrum paper Sec. IV-D, Alg. 2).

    Alg. 2 ranks the servers by reputation and takes the first one that is
    online — equivalently the arg-max of reputation over online nodes.

    Args:
      rep: reputations (..., S).
      online: bool (..., S), broadcastable against ``rep``.

    Returns:
      int32 (...,): the chosen index, or **-1 if no node is online** (no
      aggregation this round). Callers must test ``idx >= 0`` before
      indexing (a raw -1 would silently pick the last node in NumPy/JAX
      indexing); ``jax.nn.one_hot(idx, S)`` is all-zero for -1 and
      :func:`reputation_reset` treats -1 as a no-op.

    Decisions: ties go to the lowest index; reputations of ``-inf`` are
    handled (an online ``-inf`` node is still chosen if it is the only one
    online); NaN reputations give an unspecified (but in-range or -1) index.
    """
    rep = _as_float(rep)
    online = jnp.asarray(online, jnp.bool_)
    rep, online = jnp.broadcast_arrays(rep, online)
    masked = jnp.where(online, rep, -jnp.inf)
    best = jnp.max(masked, axis=-1, keepdims=True)
    cand = online & (masked == best)
    idx = jnp.argmax(cand, axis=-1).astype(jnp.int32)
    return jnp.where(jnp.any(online, axis=-1), idx, jnp.int32(-1))


def reputation_reset(rep, aggregator, value=0.0):
    """Set the aggregator's reputation to ``value`` (default 0) after it writes a block.

    (R) The spectrum spec: the aggregator receives B_s and its reputation is
    reset to 0 (the paper's sentence is truncated: "puts its reputation
    record to ."). ``aggregator`` (...,) int from :func:`select_aggregator`;
    -1 (nobody) leaves ``rep`` unchanged.
    """
    rep = _as_float(rep)
    hit = jnp.arange(rep.shape[-1]) == jnp.expand_dims(jnp.asarray(aggregator), -1)
    return jnp.where(hit, _as_float(value), rep)


# ---------------------------------------------------------------------------
# PBFT
# ---------------------------------------------------------------------------


def pbft_messages(n):
    """Messages of one PBFT consensus instance among n nodes.

    (n−1) pre-prepare + (n−1)² prepare + n(n−1) commit = 2n(n−1)
    (Castro & Liskov 1999; client request/reply not counted). n = 4 → 24.
    Works on Python ints and integer/float arrays (elementwise).
    """
    n = jnp.asarray(n)
    return 2 * n * (n - 1)


class PBFTLatency(NamedTuple):
    """PBFT phase latencies and their sum, seconds."""

    pre_prepare: jax.Array
    prepare: jax.Array
    commit: jax.Array
    total: jax.Array


def pbft_latency(
    n,
    message_bits,
    link_rate_bps,
    verify_time_s,
    block_bits=None,
    prop_delay_s=0.0,
    block_verify_s=0.0,
    broadcast=False,
):
    """Latency of one PBFT consensus instance, phase by phase.

    Model (a decision: the consensus papers give no PBFT timing model). Each
    node has one outgoing link of rate r and sends its copies one after the
    other (unicast); with ``broadcast=True`` one transmission reaches every
    peer (shared medium / multicast). Each received protocol message costs
    ``verify_time_s`` (signature check), processed sequentially. Every
    message counted by :func:`pbft_messages` is sent and verified (no early
    exit at the 2f+1 quorum), so this is a count-consistent upper bound::

        tx(b)       = (n−1)·b/r   (unicast)   or   b/r   (broadcast)
        pre_prepare = tx(S_B) + d + t_v + t_block
        prepare     = tx(m)   + d + (n−1)·t_v
        commit      = tx(m)   + d + (n−1)·t_v
        total       = pre_prepare + prepare + commit

    Args:
      n: number of nodes (int or float array).
      message_bits: m, size of a prepare/commit message (bits).
      link_rate_bps: r (bit/s).
      verify_time_s: t_v, time to verify one message (s).
      block_bits: S_B, pre-prepare payload (the block, bits); default m.
      prop_delay_s: d, one-hop propagation delay (s), once per phase.
      block_verify_s: t_block, time to validate the block's content (s).
      broadcast: static bool, see above.

    Decision: with n ≤ 1 there is no peer and no message, so every phase is
    0 (no propagation or block-check time either). All arguments broadcast;
    differentiable in the continuous ones.
    """
    n = _as_float(n)
    m = _as_float(message_bits)
    r = _as_float(link_rate_bps)
    tv = _as_float(verify_time_s)
    sb = m if block_bits is None else _as_float(block_bits)
    d = _as_float(prop_delay_s)
    tb = _as_float(block_verify_s)
    peers = jnp.maximum(n - 1.0, 0.0)
    active = n > 1

    def tx(bits):
        return bits / r if broadcast else peers * bits / r

    pp = jnp.where(active, tx(sb) + d + tv + tb, 0.0)
    pr = jnp.where(active, tx(m) + d + peers * tv, 0.0)
    cm = jnp.where(active, tx(m) + d + peers * tv, 0.0)
    total = pp + pr + cm
    return PBFTLatency(*(jnp.broadcast_to(x, total.shape) for x in (pp, pr, cm, total)))
