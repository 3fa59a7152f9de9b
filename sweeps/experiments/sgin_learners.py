"""Learned methods in the ``sgin`` experiments: MAML-MADFRL, MADFRL from scratch and MAPPO.

Training and evaluation are separate steps. Each learner trains *once per training
seed* (``sweeps.methods``: 2 smoke, 3 default, 5 paper) for every sgin figure and the
comparison table (:func:`shared_trained`, issue 16 item 6): one sharded batch over
training seeds through :func:`sweeps.methods.train_batch_or_load` (kept per cell;
``python -m sweeps.grid --eval-only`` loads it), on env params drawn per episode over
the figures' swept axes (:data:`SWEPT`, :func:`sample_swept`,
:class:`jaxsg.wrappers.ParamsPerEpisode`).
:func:`evaluate_shared` then evaluates the stored parameters greedily through
``methods.learned_policy`` and ``jaxsg.wrappers.rollout`` on the heuristics' episode keys
(common random numbers: training seed s plays evaluation seed s's episodes) at every
axis value; MAML-MADFRL first adapts its inner steps there.

Decisions:
* **Equal env-step budget** (:func:`env_steps`): one env step = one slot of one
  environment (every agent acts). MAML-MADFRL spends ``meta_iterations × num_tasks ×
  num_envs × rollout_steps`` steps meta-training and ``num_updates × num_envs``
  fine-tuning; MADFRL from scratch gets the same total as fine-tuning updates from a
  random initialisation (the row that measures the MAML initialisation); MAPPO gets
  ``num_envs × num_steps × num_updates`` equal to it. :func:`learner_configs` derives
  the scratch and MAPPO configs from the MAML-MADFRL budget, and a test checks equality.
* **One price regime**: every learned follower trains and is evaluated with the leader
  posting the env's price λ₀, as every heuristic does (MADFRL's learned leader is off,
  ``learn_leader=False``; MAPPO's other classes play the adapter's posted price). The
  Stackelberg reference posts its best fixed price over whole episodes.
* **Greedy evaluation** for every learner: MADFRL's deterministic actor and MAPPO's
  mode (``deterministic=True``); both act in the same action encoding (relative channel,
  ranked LEO, mode-relative CPU: ``agents.networks.encoding``, ``agents.adapters.sgin``).
  MADFRL from scratch picks the offload mode by each DT's own critic (P-DQN's rule,
  ``madfrl.Config.mode_choice``), MAML-MADFRL by its actor's logits
  (:data:`MAML_MODE_CHOICE` has the measurements).
* **Shared training**: MAML-MADFRL meta-trains θ over :func:`sample_swept`'s tasks
  (``maml_madfrl.make_meta_train``'s ``sample_tasks``), then runs MADFRL + FL from θ's
  actor with fresh critics (``maml_madfrl.fine_tune_init``) on the randomised env; at
  each evaluated point it adapts ``inner_steps`` SGD steps from {the followers' mean
  actor, θ's critic} on one support batch there (``maml_madfrl.make_adapt``) and plays
  the adapted actor at every follower. MADFRL
  from scratch and MAPPO train on the same randomised env with the same env-step budget
  and play one policy at every point. Training runs at the default M with
  ``agent_id=False``, so the follower network serves Figs. 4-5's other M. The price is
  drawn with ``price_mode="fixed"`` (the followers see the price in force either way).
* Budgets per scale are in :data:`TRAINING`; the default scale is small (the whole
  default grid must finish in minutes on a laptop CPU), the paper scale uses the
  learners' default configs.

Experiments here (beyond the paper; listed in ``sweeps.experiments``):
``sgin_learned_vs_heuristics`` is in the default set, ``sgin_fast_adaptation``
runs on request (``--experiment``):
* ``sgin_learned_vs_heuristics`` — default sgin at equal V: capacity and served
  throughput, cloud profit, queue, offload share and follower reward of every method
  with 95 % CIs; paired gaps to best response and to the Stackelberg reference; claims
  "MAML-MADFRL beats every paper baseline", "... beats the best constant policy" and
  "... beats MADFRL from scratch" judged by paired comparisons.
* ``sgin_fast_adaptation`` — the paper's untested claim of faster adaptation:
  mean follower reward on held-out arrival regimes after k inner steps, from
  the MAML initialisation vs a non-meta pretrained one vs scratch.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxsg
from agents import core, madfrl, mappo
from agents import maml_madfrl as mm
from jaxsg.wrappers import ParamsPerEpisode, rollout
from sweeps import methods, report, stats
from sweeps.experiments import Cell, Experiment, RunContext
from sweeps.sharding import run_axis, run_batched

#: learned methods of the paper's figures (MADFRL from scratch joins the comparison only)
LEARNED_METHODS = ("maml_madfrl", "mappo")
COMPARE_LEARNERS = ("maml_madfrl", "madfrl", "mappo")
#: Per-slot env metrics every sgin record carries (time averages over the episode).
SGIN_METRICS = (
    "throughput_mbit",
    "served_mbit",
    "queue_mean_mbit",
    "interference_dbm",
    "interference_w",
    "leader_profit",
    "privacy_overhead_ms",
    "offload_fraction",
    "price_mean",
    "cpu_mean_ghz",
)
#: Record column of each env metric: the unit in the name (money-like units: ``_price``).
COLUMNS = {"leader_profit": "leader_profit_price", "price_mean": "price_mean_price"}
RECORD_METRICS = tuple(COLUMNS.get(k, k) for k in SGIN_METRICS)

#: one price regime for every learner (module docstring)
LEARN_LEADER = False
#: γ = 0: the drift-plus-penalty reward is built to be maximised slot by slot. 1000 updates:
#: measured at the defaults (48 DTs, 1 seed, λ₀ fixed) MADFRL from scratch scored −777 per
#: DT-slot after 230 updates (all local) and −94.5 after 1000 (best constant −125.4).
#: ``agent_id=False``: one network fits any number of DTs (Figs. 4-5 sweep M with the
#: policies trained at the default M). ``hidden=(128, 128)`` for both MADFRL rows: at
#: (64, 64) MADFRL from scratch failed on one of the grid's 3 training seeds (−147.3 per
#: DT-slot against the best constant's −121.8) and MAML-MADFRL on 1 of 4 other seeds
#: (−166.3); at (128, 128) MADFRL from scratch beat it in 26 of 26 runs measured and
#: MAML-MADFRL in 24 of 28 from θ's actor and critic, 35 of 36 from θ's actor with fresh
#: critics (``maml_madfrl.fine_tune_init``), for about 100 s more training CPU at the
#: default scale (docs/sgin.md, "Session 9"; docs/learners.md §MAML-MADFRL).
_SMOKE_MADFRL = madfrl.Config(num_envs=2, num_updates=4, batch_size=8, buffer_size=8,
                              warmup_updates=1, learn_leader=LEARN_LEADER, gamma=0.0,
                              agent_id=False)
_DEFAULT_MADFRL = madfrl.Config(num_envs=4, num_updates=1000, batch_size=64, gamma=0.0,
                                buffer_size=256, warmup_updates=8, learn_leader=LEARN_LEADER,
                                agent_id=False, hidden=(128, 128))

#: Training budget per scale (MAML-MADFRL's; MADFRL-scratch and MAPPO get the same number
#: of env steps, :func:`learner_configs`). ``mappo``: everything but ``num_updates``.
TRAINING = {
    "smoke": dict(
        meta=mm.Config(madfrl=_SMOKE_MADFRL, meta_iterations=2, num_tasks=2, num_envs=1,
                       rollout_steps=2),
        mappo=mappo.Config(num_envs=2, num_steps=4, update_epochs=1, num_minibatches=1),
        adapt_ks=(0, 1, 2), adapt_seeds=3),
    "default": dict(
        meta=mm.Config(madfrl=_DEFAULT_MADFRL, meta_iterations=20, num_tasks=2,
                       num_envs=2, rollout_steps=4),
        mappo=mappo.Config(num_envs=4, num_steps=10),
        adapt_ks=(0, 1, 2, 5), adapt_seeds=4),
    "paper": dict(
        meta=mm.Config(madfrl=madfrl.Config(learn_leader=LEARN_LEADER, gamma=0.0,
                                            agent_id=False)),
        mappo=mappo.Config(),
        adapt_ks=(0, 1, 2, 5, 10), adapt_seeds=8),
}

#: Shared training (issue 16 item 6): every learner trains once per training seed on the
#: swept params of the learned figures, each episode drawing one option: one figure axis
#: ``(field, low, high, log-uniform)`` at a uniform value, the other params at the
#: defaults; the last option is Fig. 5's fixed task (:data:`FIXED_TASK_BITS`) at a drawn V.
SWEPT = (("v_weight", 1.0, 100.0, True), ("power_w", 8.0, 40.0, False),
         ("bandwidth_hz", 10e6, 30e6, False), ("price", 2.0, 10.0, False),
         ("delta", 0.2, 1.0, False), ("f_mbs_hz", 2e9, 6e9, False))
FIXED_TASK_BITS = 6e6
#: the share of training episodes at the default params (the comparison table's point);
#: the rest draw one swept option. Measured at the default scale with 0 (every episode
#: draws an option): MAML-MADFRL's lead over the best constant fell to 16.8 ± 28.4
#: (n = 3, not significant) from 44.4 ± 6.8 when trained at the defaults only
DEFAULT_SHARE = 0.5
TRAINING_NOTE = "shared"  # the records' ``training``: one training per seed for every axis


#: Held-out arrival regimes (Mbit/slot) for the fast-adaptation figure: outside the
#: meta-training regimes of ``agents.adapters.sgin.TASK_ARRIVALS_MBIT``.
HELD_OUT_REGIMES = ((0.5, 1.5), (12.0, 16.0))
ADAPT_INITS = ("maml", "pretrained", "scratch")
ADAPT_LABELS = {"maml": "MAML init", "pretrained": "pretrained (no inner loop)",
                "scratch": "scratch (random init)"}


def env_steps(method: str, config) -> int:
    """Env steps (slots of one environment) a training run of ``method`` consumes."""
    if method == "maml_madfrl":
        meta = config.meta_iterations * config.num_tasks * config.num_envs * \
            config.rollout_steps
        return meta + env_steps("madfrl", config.madfrl)
    if method == "madfrl":
        return config.num_updates * config.num_envs
    if method == "mappo":
        return config.num_updates * config.num_envs * config.num_steps
    raise ValueError(f"unknown learned method {method!r}; expected one of {COMPARE_LEARNERS}")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


#: How MAML-MADFRL's greedy followers pick the offload mode (``madfrl.Config.mode_choice``;
#: MADFRL from scratch keeps madfrl's default, its own critic). MAML-MADFRL's evaluation
#: plays the followers' mean actor at every DT for any M (Figs. 4-5), and a mean of its 48
#: fine-tuned critics chose worse than the logits. Measured at the defaults (shared
#: training, 4 episodes; best constant −121.8 per DT-slot), (64, 64) from θ's actor and
#: critic, 4 seeds from PRNGKey 11: mean actor by its logits −110.0 / −166.3 / −87.2 /
#: −103.7, by the mean critic −152.3 / −166.3 / −114.1 / −233.0, per-DT actors by their own
#: critics −126.0 / −166.9 / −85.0 / −113.1; (128, 128) from θ's actor with fresh critics,
#: 20 seeds (PRNGKey 13, 17, the grid's): mean −87.6 by the logits, −87.9 by per-DT
#: critics, −291.1 by the mean critic.
MAML_MODE_CHOICE = "actor"


def learner_configs(scale: str) -> dict:
    """``{method: training config}`` at ``scale`` with the same env-step budget (MADFRL
    scratch and MAPPO rounded up to whole updates; :func:`env_steps`)."""
    t = TRAINING[scale]
    meta = t["meta"]
    budget = env_steps("maml_madfrl", meta)
    scratch = dataclasses.replace(meta.madfrl,
                                  num_updates=_ceil_div(budget, meta.madfrl.num_envs))
    meta = dataclasses.replace(meta, madfrl=dataclasses.replace(
        meta.madfrl, mode_choice=MAML_MODE_CHOICE))
    ppo = t["mappo"]
    ppo = dataclasses.replace(ppo, num_updates=_ceil_div(budget, ppo.num_envs * ppo.num_steps))
    return {"maml_madfrl": meta, "madfrl": scratch, "mappo": ppo}


def policy_config(method: str, config):
    """The config of ``methods.learned_policy`` (the learner module's ``Config``)."""
    return config.madfrl if method == "maml_madfrl" else config


# ------------------------------------------------------------ shared training
def sample_swept(key, base_params, num: int):
    """``num`` env params (leading axis) from the shared-training distribution: the
    defaults with probability :data:`DEFAULT_SHARE`, else one option of :data:`SWEPT` (or
    the fixed task) drawn uniformly, which sets that axis's field."""
    k_opt, k_u, k_def = jax.random.split(key, 3)
    option = jax.random.randint(k_opt, (num,), 0, len(SWEPT) + 1)
    option = jnp.where(jax.random.uniform(k_def, (num,)) < DEFAULT_SHARE, -1, option)
    u = jax.random.uniform(k_u, (num,))
    batch = jax.tree.map(lambda x: jnp.broadcast_to(x, (num,) + jnp.shape(x)), base_params)
    fixed_task = option == len(SWEPT)
    changes = {}
    for i, (name, low, high, log) in enumerate(SWEPT):  # a few static fields
        value = jnp.exp(jnp.log(low) + u * jnp.log(high / low)) if log else \
            low + u * (high - low)
        hit = (option == i) | (fixed_task & (name == "v_weight"))
        old = getattr(batch, name)
        changes[name] = jnp.where(hit, value, old).astype(old.dtype)
    for name in ("arrival_min_bits", "arrival_max_bits"):
        old = getattr(batch, name)
        changes[name] = jnp.where(fixed_task, FIXED_TASK_BITS, old).astype(old.dtype)
    return batch.replace(**changes)


def overrides_key(ctx: RunContext) -> tuple:
    """The cell's ``--set`` overrides as a hashable cache key."""
    return tuple(sorted((k, json.dumps(v)) for k, v in ctx.overrides.items()))


def _context(scale: str, seed: int, ov: tuple) -> RunContext:
    return RunContext(scale=scale, seed=seed, overrides={k: json.loads(v) for k, v in ov})


def configs(ctx: RunContext) -> dict:
    """:func:`learner_configs` with the cell's learner overrides (``ctx.learner_config``)."""
    return {m: ctx.learner_config(c) for m, c in learner_configs(ctx.scale).items()}


def training_env(ctx: RunContext):
    """The shared-training env (fixed posted price, so the drawn λ is in force) and its base
    params: the comparison's sizes and horizon, with the cell's env overrides."""
    run = _COMPARE[ctx.scale]
    return ctx.make("sgin", horizon=run["horizon"], price_mode="fixed", **run["sizes"])


_SHARED: dict = {}


def shared_trained(method: str, ctx: RunContext) -> dict:
    """``{"policy": params[, "theta": meta-init]}`` of ``method`` stacked over training
    seeds, trained once on :func:`sample_swept`'s params (MAML-MADFRL: meta-trained over
    them, then MADFRL + FL from θ on them), kept by ``methods.train_batch_or_load`` and
    cached per process by (method, scale, seed, overrides)."""
    cfg = configs(ctx)[method]
    env, params = training_env(ctx)
    seeds = methods.train_seeds("sgin", method, ctx.scale)
    identity = {"config": core.config_json(cfg), "sizes": _COMPARE[ctx.scale]["sizes"],
                "horizon": env.horizon, "seed": ctx.seed, "seeds": seeds,
                "training": TRAINING_NOTE, "swept": [list(s) for s in SWEPT],
                "default_share": DEFAULT_SHARE,
                "fixed_task_bits": FIXED_TASK_BITS}
    run = methods.active_run()  # a cache per run directory and mode (--eval-only loads)
    where = (str(run.policy_dir), run.eval_only) if run is not None else None
    cache = json.dumps([method, identity, overrides_key(ctx), where], sort_keys=True,
                       default=str)
    if cache in _SHARED:
        methods.note_saved("sgin", method, identity)
        return _SHARED[cache]
    swept = ParamsPerEpisode(env, sample_swept)
    if method == "maml_madfrl":
        meta, rl = mm.make_meta_train(env, cfg, sample_swept), madfrl.make_train(swept, cfg.madfrl)

        def one(key):
            k_meta, k_rl = jax.random.split(key)
            theta, _ = meta(k_meta, params)
            return {"policy": rl(k_rl, params, mm.fine_tune_init(cfg, theta))[0],
                    "theta": theta}
    elif method in ("madfrl", "mappo"):
        train = (madfrl if method == "madfrl" else mappo).make_train(swept, cfg)

        def one(key):
            return {"policy": train(key, params)[0]}
    else:
        raise ValueError(f"unknown learned method {method!r}; expected one of "
                         f"{COMPARE_LEARNERS}")
    keys = np.asarray(jax.random.split(jax.random.fold_in(jax.random.PRNGKey(ctx.seed), 1),
                                       seeds))
    _SHARED[cache] = methods.train_batch_or_load("sgin", method, identity, one, keys)
    return _SHARED[cache]


#: Inner steps MAML-MADFRL adapts at each evaluated point of the figures and the table,
#: from θ = {the followers' mean actor, the meta-trained critic}. 0 at the default scale:
#: measured there (3 seeds × 4 episodes at the defaults, 482a422), one step *lowered* the
#: follower reward from −92.5 / −109.0 / −115.6 to −147.0 / −137.2 / −347.1 per DT-slot.
#: Re-measured in session 8 (3 seeds from PRNGKey 11): k = 0 / 1 / 2 gives −109.9 /
#: −108.9 / −194.8, −165.4 / −165.7 / −165.6 and −87.8 / −79.1 / −77.9 (no consistent
#: gain); adapting from the mean of MADFRL's fine-tuned critics instead (returned with
#: ``mode_choice="critic"``) is far worse at k = 1 (−697.9 / −166.1 / −843.7). Smoke keeps
#: 1 (the path is tested), the paper scale the meta-training's ``inner_steps``.
FIGURE_ADAPT_STEPS = {"smoke": 1, "default": 0, "paper": None}


def adapt_steps(method: str, ctx: RunContext) -> int:
    """Inner steps MAML-MADFRL adapts at each evaluated point (:data:`FIGURE_ADAPT_STEPS`)."""
    if method != "maml_madfrl":
        return 0
    k = FIGURE_ADAPT_STEPS[ctx.scale]
    return int(configs(ctx)[method].inner_steps if k is None else k)


def episode_summary(traj: dict, metrics: tuple = RECORD_METRICS) -> dict:
    """Time averages of the named metrics (record column names, see :data:`COLUMNS`) plus
    the mean follower reward."""
    out = {COLUMNS.get(k, k): v.mean() for k, v in traj["metrics"].items()
           if COLUMNS.get(k, k) in metrics}
    out["follower_reward"] = traj["reward"]["follower"].mean()
    return out


def evaluate_shared(method: str, env, params, points: list[dict], ctx: RunContext, *,
                    horizon: int, episodes: int, metrics: tuple = RECORD_METRICS):
    """Greedy evaluation of the shared policies (:func:`shared_trained`) on every point ×
    training seed × episode (training seed s plays evaluation seed s's episodes), at any
    number of DTs. MAML-MADFRL first adapts :func:`adapt_steps` inner steps at each point
    from θ = {the followers' mean actor, the meta-trained critic}, on one support batch
    (the same key at every point). Returns ``run_axis``'s ``(out, index)`` and the
    record fields saying which training was evaluated."""
    cfg = configs(ctx)[method]
    stack = shared_trained(method, ctx)
    seeds = methods.train_seeds("sgin", method, ctx.scale)
    fields = {"training": TRAINING_NOTE, "train_env_steps": env_steps(method, cfg)}
    if method == "maml_madfrl":
        k = adapt_steps(method, ctx)
        adapt = mm.make_adapt(env, cfg, (k,))
        mean = lambda tree: jax.tree.map(lambda x: x.mean(1), tree)  # noqa: E731 over DTs
        theta = {"actor": mean(stack["policy"]["follower"]),
                 "critic": mean(stack["policy"]["follower_critic"])
                 if "follower_critic" in stack["policy"] else stack["theta"]["critic"]}
        keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(ctx.seed), 3), seeds)
        per_seed = {"theta": theta, "adapt_key": np.asarray(keys)}
        fields["adapt_steps"] = k

        def policy_of(elem):
            follower = elem["theta"] if k == 0 else jax.tree.map(
                lambda a: a[0], adapt(elem["adapt_key"], elem["theta"], elem["params"]))
            return mm.follower_policy_params(env, cfg, follower)
    else:
        per_seed = {"policy": stack["policy"]}

        def policy_of(elem):
            return elem["policy"]

    pcfg = policy_config(method, cfg)

    def one(elem):
        policy = methods.learned_policy("sgin", method, env, pcfg, policy_of(elem))
        return episode_summary(rollout(env, policy, elem["key"], elem["params"], horizon),
                               metrics)

    out, index = run_axis(one, params, points, seeds=seeds, episodes=episodes, seed=ctx.seed,
                          per_seed=per_seed, validate=env.validate_params)
    return out, index, fields


def training_text(records: list[dict]) -> str:
    """Which training the learned records show, computed from their fields."""
    rows = [r for r in records if "training" in r]
    if not rows:
        return ""
    parts = []
    for m in dict.fromkeys(r["method"] for r in rows):
        r = next(x for x in rows if x["method"] == m)
        adapt = "" if "adapt_steps" not in r else \
            f", adapted {r['adapt_steps']} inner step(s) at each point" if r["adapt_steps"] \
            else ", not adapted per point (0 inner steps)"
        parts.append(f"{methods.label('sgin', m)}: {r['training']} training "
                     f"({r['train_env_steps']} env steps per seed){adapt}")
    return ("Learned series: one training per training seed shared by every axis value "
            "(params drawn per episode over the swept axes; " + "; ".join(parts) + ").")


# ------------------------------------------- learned vs heuristics at default sgin
COMPARE_METHODS = ("marto", "mamcc", "magcs", "best_constant", "best_response",
                   "stackelberg") + COMPARE_LEARNERS
PAPER_BASELINES = ("marto", "mamcc", "magcs", "mappo")
_SMOKE_SIZES = dict(num_mbs=2, users_per_mbs=3, num_leo=2, num_channels=3)
_DEFAULT_SIZES = dict(num_mbs=4, users_per_mbs=12, num_leo=4, num_channels=12)
#: evaluation seeds (heuristics / references; learners: their training seeds) × shared
#: evaluation episodes per seed (docs/evaluation.md: ≥ 16 at the default scale)
_COMPARE = {"smoke": dict(sizes=_SMOKE_SIZES, horizon=8, seeds=2, episodes=2),
            "default": dict(sizes=_DEFAULT_SIZES, horizon=50, seeds=5, episodes=16),
            "paper": dict(sizes=_DEFAULT_SIZES, horizon=200, seeds=8, episodes=16)}
#: selection episodes of the best constant policy and the Stackelberg price (keys from
#: ``SELECTION_SEED + run seed``, not evaluation keys)
SELECTION_EPISODES = {"smoke": 2, "default": 8, "paper": 16}
SELECTION_SEED = 2**20
COMPARE_COLUMNS = (("throughput_mbit", "capacity throughput (Mbit/slot)", True),
                   ("served_mbit", "served throughput (Mbit/slot)", True),
                   ("leader_profit_price", "cloud profit (price units/slot)", True),
                   ("queue_mean_mbit", "queue per DT (Mbit)", False),
                   ("offload_fraction", "offload share (1)", None),
                   ("price_mean_price", "price in force (price units/GHz)", None),
                   ("follower_reward", "follower reward (1)", True))
#: (metric, reference) of the paired gap table
GAPS = (("follower_reward", "best_response"), ("served_mbit", "best_response"),
        ("leader_profit_price", "stackelberg"))


def _compare_cells(scale: str) -> list[Cell]:
    return [Cell(m, {"method": m}) for m in COMPARE_METHODS]


def _reference_policy(method: str, env, params, scale: str, seed: int):
    """A heuristic / reference policy and the params it is evaluated at (the Stackelberg
    leader's price is in force from slot 0)."""
    sel = dict(num_episodes=SELECTION_EPISODES[scale], seed=SELECTION_SEED + seed)
    if method == "best_constant":
        return methods.policy("sgin", method, env, params=params, **sel), params
    if method == "stackelberg":
        policy = methods.policy("sgin", method, env, params=params, **sel)
        return policy, params.replace(price=np.float32(policy.price))
    return methods.policy("sgin", method, env), params


def _compare_cell(cell: Cell, ctx: RunContext) -> list[dict]:
    """Every method at the default V on the same evaluation keys: heuristics and
    references on seeds × episodes, learners (the shared trainings of the figures, trained
    or loaded once per training seed) evaluated greedily on their seed's episodes."""
    method, run = cell.config["method"], _COMPARE[ctx.scale]
    horizon, episodes = run["horizon"], run["episodes"]
    env, params = ctx.make("sgin", horizon=horizon, **run["sizes"])
    sizes = {k: getattr(env, k) for k in run["sizes"]}
    v = float(params.v_weight)
    fields = {}
    if methods.is_learner("sgin", method):
        out, index, fields = evaluate_shared(method, env, params, [{"v_weight": v}], ctx,
                                             horizon=horizon, episodes=episodes)
    else:
        policy, eval_params = _reference_policy(method, env, params, ctx.scale, ctx.seed)

        def one(elem):
            return episode_summary(rollout(env, policy, elem["key"], elem["params"], horizon))

        out, index = run_axis(one, eval_params, [{"v_weight": v}], seeds=run["seeds"],
                              episodes=episodes, seed=ctx.seed, validate=env.validate_params)
        if method == "stackelberg":
            fields = {"stackelberg_price": float(policy.price)}
        if method == "best_constant":
            fields = {f"constant_{k}": float(x) for k, x in policy.action.items()}
    n_f = sizes["num_mbs"] * sizes["users_per_mbs"]  # for the report's profit bound
    return [{"scenario": "sgin", "method": method, "axis": "v_weight", "axis_value": v,
             "seed": int(s), "episode": int(e), "users_per_mbs": int(sizes["users_per_mbs"]),
             "horizon": horizon, "num_followers": n_f, **fields,
             **{k: float(x[i]) for k, x in out.items()}}
            for i, (_, s, e) in enumerate(index)]


def rational_profit_ceiling(num_followers: int, params) -> float:
    """Cloud profit per slot when every DT buys f_min and the price is λ_max — a bound
    under ``payoff="paper"`` only (under ``"cloud"`` a DT buys the cloud CPU it uses,
    and the Stackelberg reference is the profit benchmark).

    Under ``payoff="paper"``, offloading DTs never run their own CPU, yet they pay
    λ·f for it (eq. 11, 29). So a follower maximising eq. 33 while it offloads buys
    f_min at any price, and no price can earn more than Σ(λ_max − c)·f_min. MARTO
    and MAMCC exceed this bound only because they buy mid-range CPU whatever they do.
    """
    return float(num_followers * (params.price_max - params.unit_cost) * params.cpu_min_hz / 1e9)


def _label(m: str) -> str:
    return methods.label("sgin", m)


def gap_lines(records: list[dict]) -> list[str]:
    """Paired gaps (method − reference, same seeds and episodes) of :data:`GAPS` per
    method, mean ± 95 % CI over the common seeds, as a Markdown table."""
    present = list(dict.fromkeys(r["method"] for r in records))
    head = "| method | " + " | ".join(f"{k} − {_label(ref)}" for k, ref in GAPS) + " |"
    lines = [head, "|---" * (len(GAPS) + 1) + "|"]
    for m in present:
        cells = []
        for key, ref in GAPS:
            if m == ref or not stats.select(records, method=ref):
                cells.append("–")
                continue
            d = stats.paired_difference(stats.per_seed(stats.select(records, method=m), key),
                                        stats.per_seed(stats.select(records, method=ref), key))
            cells.append(d.fmt())
        lines.append(f"| {_label(m)} | " + " | ".join(cells) + " |")
    return lines


def _compare_report(records: list[dict]) -> str:
    recs = [dict(r, series=_label(r["method"])) for r in records]
    lines = ["Default sgin at equal V; mean ± 95 % CI over seeds (heuristics and "
             "references: evaluation seeds × shared episodes; learners: training seeds, "
             "each greedy on its seed's episodes, the same keys). Every learned follower "
             "faces the posted price λ₀ like the heuristics; the Stackelberg reference "
             "posts its best fixed price.", ""]
    if training_text(records):
        lines += [training_text(records), ""]
    price = sorted({r["stackelberg_price"] for r in records if "stackelberg_price" in r})
    if price:
        lines += [f"Stackelberg reference price: {price[0]:.4g} (price units/GHz).", ""]
    for key, text, _ in COMPARE_COLUMNS:
        if any(key in r for r in records):
            lines += [f"**{text}**", "", report.ci_table(recs, key, series_key="series",
                                                         x_key=None), ""]
    lines += ["**Paired gaps to best response and to the Stackelberg reference** "
              "(method − reference per seed, mean ± 95 % CI over the common seeds; "
              "follower reward (1), served throughput (Mbit/slot), cloud profit (price "
              "units/slot)):", ""] + gap_lines(records) + [""]
    env, params = jaxsg.make("sgin")
    if records and "num_followers" in records[0] and env.payoff == "paper":
        bound = rational_profit_ceiling(int(records[0]["num_followers"]), params)
        lines += [f"**Profit bound:** followers that maximise eq. 33 buy f_min while "
                  f"they offload, so no price earns more than Σ(λ_max − c)·f_min = "
                  f"{bound:.4g} per slot at the default prices (`rational_profit_ceiling`)."]
    return "\n".join(lines)


def _compare_claims(records: list[dict]) -> list:
    out = []
    for key, text in (("follower_reward", "follower reward (1)"),
                      ("served_mbit", "served throughput (Mbit/slot)")):
        v = stats.best_of_verdict(records, key, "maml_madfrl", list(PAPER_BASELINES),
                                  higher_is_better=True)
        out.append(report.Claim("sgin", "defaults (beyond)",
                                f"MAML-MADFRL beats every paper baseline on {text}", v))
    for other, why in (("best_constant", "beats the best constant policy"),
                       ("madfrl", "beats MADFRL from scratch (the MAML initialisation "
                                  "helps at equal env steps)")):
        v = stats.beats_verdict(records, "follower_reward", "maml_madfrl", other,
                                higher_is_better=True)
        out.append(report.Claim("sgin", "defaults (beyond)",
                                f"MAML-MADFRL {why} on follower reward", v))
    return out


def _compare_plot(records: list[dict], fig_dir: Path) -> list[Path]:
    pyplot = report.plt()
    names = [m for m in COMPARE_METHODS if any(r["method"] == m for r in records)]
    cols = [c for c in COMPARE_COLUMNS if c[0] in ("served_mbit", "leader_profit_price",
                                                    "follower_reward")]
    figure, axes = pyplot.subplots(1, len(cols), figsize=(4.4 * len(cols), 3.6))
    for ax, (key, label, _) in zip(axes, cols):
        ests = [stats.estimate(records, key, method=m) for m in names]
        ax.bar(range(len(names)), [e.mean for e in ests],
               yerr=[e.half_width if e.defined else 0.0 for e in ests], capsize=3)
        ax.set_xticks(range(len(names)), [_label(m) for m in names], rotation=35,
                      ha="right", fontsize=7)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, axis="y")
    figure.suptitle("sgin defaults: mean per method, error bars = 95 % CI over seeds",
                    fontsize=9)
    figure.tight_layout()
    return report.save_figure(figure, fig_dir, "sgin_learned_vs_heuristics")


# ------------------------------------------------------------ fast adaptation
def _adapt_cells(scale: str) -> list[Cell]:
    return [Cell(kind, {"init": kind}) for kind in ADAPT_INITS]


@functools.lru_cache(maxsize=16)
def _initialisation(kind: str, scale: str, seed: int, seeds: int, ov: tuple):
    """Meta-trained (``maml``), jointly pretrained or random follower actor-critics, one
    per seed (stacked on a leading axis, each from its own key); the trained ones kept
    per cell (``train_batch_or_load``) like every trained policy."""
    ctx, run = _context(scale, seed, ov), _COMPARE[scale]
    env, params = ctx.make("sgin", horizon=run["horizon"], **run["sizes"])
    cfg = configs(ctx)["maml_madfrl"]
    keys = np.asarray(jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), 7), seeds))
    if kind == "scratch":
        return jax.tree.map(np.asarray, jax.vmap(lambda k: mm.init_follower(
            env, cfg.madfrl, k))(keys))
    build = (mm.make_meta_train if kind == "maml" else mm.make_pretrain)(env, cfg)
    identity = {"config": core.config_json(cfg), "sizes": run["sizes"], "seed": seed,
                "seeds": seeds, "horizon": run["horizon"]}
    return methods.train_batch_or_load("sgin", f"{kind}_init", identity,
                                       lambda k: build(k, params)[0], keys)


def _adapt_cell(cell: Cell, ctx: RunContext) -> list[dict]:
    """Each seed s meta-trains (or pretrains, or draws) its own initialisation, then adapts
    k inner steps on every held-out regime: CIs over initialisation seeds."""
    kind, run = cell.config["init"], _COMPARE[ctx.scale]
    horizon = run["horizon"]
    training = TRAINING[ctx.scale]
    ks, seeds = training["adapt_ks"], training["adapt_seeds"]
    theta = _initialisation(kind, ctx.scale, ctx.seed, seeds, overrides_key(ctx))
    env, params = ctx.make("sgin", horizon=horizon, **run["sizes"])
    evaluate = mm.make_adaptation_eval(env, configs(ctx)["maml_madfrl"], ks, horizon)

    def one(e):
        return evaluate(e["key"], e["theta"], e["params"])

    regimes = np.asarray(HELD_OUT_REGIMES, np.float32) * 1e6
    n = len(regimes) * seeds
    batch = jax.tree.map(lambda x: np.full((n,), x, np.float32), params).replace(
        arrival_min_bits=np.repeat(regimes[:, 0], seeds),
        arrival_max_bits=np.repeat(regimes[:, 1], seeds))
    env.validate_params(batch)
    keys = np.tile(jax.random.split(jax.random.fold_in(jax.random.PRNGKey(ctx.seed), 2), seeds),
                   (len(regimes), 1))
    thetas = jax.tree.map(lambda x: np.tile(x, (len(regimes),) + (1,) * (x.ndim - 1)), theta)
    out = run_batched(one, {"key": keys, "theta": thetas, "params": batch})
    return [{"init": kind, "regime": f"{HELD_OUT_REGIMES[i // seeds][0]:g}-"
             f"{HELD_OUT_REGIMES[i // seeds][1]:g} Mbit", "seed": int(i % seeds), "k": int(k),
             "follower_reward": float(out[i, j])}
            for i in range(n) for j, k in enumerate(ks)]


def _adapt_curves(records: list[dict]) -> dict:
    """{regime: {init: (ks, [Estimate over seeds])}}."""
    out: dict = {}
    for regime in sorted({r["regime"] for r in records}):
        rows = [dict(r, series=ADAPT_LABELS[r["init"]]) for r in records
                if r["regime"] == regime]
        out[regime] = report.series_estimates(rows, "follower_reward", series_key="series",
                                              x_key="k")
    return out


def _adapt_plot(records: list[dict], fig_dir: Path) -> list[Path]:
    pyplot = report.plt()
    curves = _adapt_curves(records)
    figure, axes = pyplot.subplots(1, len(curves), figsize=(4.6 * len(curves), 3.6),
                                   squeeze=False)
    for ax, (regime, by_init) in zip(axes[0], curves.items()):
        report.band_plot(ax, by_init, offset_frac=0.04)
        ax.set_title(f"held-out arrivals {regime}", fontsize=9)
        ax.set_xlabel("inner adaptation steps k (1)")
        ax.set_ylabel("mean follower reward per DT per slot (1)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, title=report.BAND_NOTE, title_fontsize=6)
    figure.suptitle("sgin fast adaptation: follower reward after k inner steps", fontsize=9)
    figure.tight_layout()
    return report.save_figure(figure, fig_dir, "sgin_fast_adaptation")


def _adapt_report(records: list[dict]) -> str:
    lines = ["Mean follower reward after k inner steps, mean ± 95 % CI over seeds (each "
             "seed meta-trains / pretrains / draws its own initialisation).", ""]
    for regime in sorted({r["regime"] for r in records}):
        rows = [dict(r, series=ADAPT_LABELS[r["init"]]) for r in records
                if r["regime"] == regime]
        lines += [f"**held-out arrivals {regime}**", "",
                  report.ci_table(rows, "follower_reward", series_key="series", x_key="k",
                                  x_label="k"), ""]
    return "\n".join(lines)


def _adapt_claims(records: list[dict]) -> list:
    """MAML init beats both other initialisations after one inner step, every regime."""
    rows = [dict(r, method=r["init"]) for r in records if r["k"] == 1]
    if not rows:
        return [report.Claim("sgin", "fast adaptation (beyond)", "MAML adapts faster",
                             stats.not_run(["k = 1"]))]
    out = []
    for regime in sorted({r["regime"] for r in rows}):
        v = stats.best_of_verdict([r for r in rows if r["regime"] == regime],
                                  "follower_reward", "maml", ["pretrained", "scratch"],
                                  higher_is_better=True)
        out.append(report.Claim("sgin", "fast adaptation (beyond)",
                                f"MAML init is best after 1 inner step ({regime})", v,
                                "claimed, never shown"))
    return out


EXPERIMENTS = [
    Experiment(
        name="sgin_learned_vs_heuristics", scenario="sgin",
        title="sgin defaults — MAML-MADFRL, MADFRL from scratch and MAPPO vs heuristics "
              "and references",
        cells=_compare_cells, run_cell=_compare_cell, plot=_compare_plot,
        report=_compare_report, claims=_compare_claims, default=True),
    Experiment(
        name="sgin_fast_adaptation", scenario="sgin",
        title="sgin fast adaptation — MAML vs pretrained vs scratch on held-out arrival regimes",
        cells=_adapt_cells, run_cell=_adapt_cell, plot=_adapt_plot, report=_adapt_report,
        claims=_adapt_claims, default=False),
]
