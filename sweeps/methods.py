"""The methods registry: method name → kind, label and how to build its policy.

Experiments name methods; they never construct them. A method is one of

* ``heuristic`` — a paper baseline (MARTO, RD, random association, ...),
* ``reference`` — an exact / best-response / Stackelberg / myopic optimum, the best
  constant policy or a hand-made bound beyond the paper,
* ``learner`` — a trained method, with its per-scale number of training seeds and the
  ``agents`` module whose ``make_policy`` builds its evaluation policy.

Every heuristic and reference any experiment compares is an entry here (no side tables
in experiment modules); its policy comes from ``agents.heuristics.get``:

    m = methods.get("sgin", "marto")               # Method(kind="heuristic", ...)
    policy = methods.policy("sgin", "marto", env)  # a jaxsg.policy.Policy
    policy = methods.policy("dt_deploy", "best_constant", env, params=p, key=k)
    policy = methods.learned_policy("edge_assoc", "proposed", env, config, policy_params)

Every policy built here has the one signature ``policy(key, obs, state, params)``
(or is a :class:`jaxsg.policy.RecurrentPolicy`), so :func:`jaxsg.wrappers.rollout`
evaluates all of them.

Overrides and saved policies (``python -m sweeps.grid --set ... / --eval-only``):
:func:`resolve_overrides` parses and validates ``--set KEY=VALUE`` (namespace in
:data:`SET_HELP`) before any compute; the runner passes each cell's overrides to its
``run_cell`` in ``RunContext.overrides`` (applied by ``ctx.make`` and
``ctx.learner_config``); :func:`train_or_load` is where a learned cell's training output is
saved (or, with ``--eval-only``, loaded), and :func:`train_batch_or_load` is the usual
way to call it — train one function over a batch of training seeds (or seeds × points)
in one sharded call, keep the output per cell, and evaluate it separately:

    params_by_seed, metrics = methods.train_batch_or_load(
        "dt_deploy", method, {"config": core.config_json(config), "seed": seed},
        lambda key: train(key, env_params), keys)

Training and evaluation stay separate: the cell trains (or loads) first, then
evaluates the stored parameters with :func:`learned_policy`, so ``--eval-only``
re-runs exactly the evaluation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

KINDS = ("heuristic", "reference", "learner")
SCALES = ("smoke", "default", "paper")


@dataclass(frozen=True)
class Method:
    scenario: str
    name: str
    kind: str
    label: str
    #: learners: training seeds per scale (docs/evaluation.md §3: ≥ 3 default, ≥ 5 paper)
    train_seeds: dict = field(default_factory=dict)
    #: False where the policy runs host-side (not jit-able), e.g. an exact SciPy optimum
    jittable: bool = True
    #: learners: the ``agents`` module whose ``make_policy(env, config, params)`` builds the
    #: evaluation policy (the config passed must be that module's ``Config``)
    module: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"method {self.name!r}: kind must be one of {KINDS}, "
                             f"got {self.kind!r}")
        if self.kind == "learner" and set(self.train_seeds) != set(SCALES):
            raise ValueError(f"learner {self.name!r}: train_seeds needs every scale {SCALES}")
        if self.kind == "learner" and not self.module:
            raise ValueError(f"learner {self.name!r}: module (agents.<module>) is required")


_LEARNER_SEEDS = {"smoke": 2, "default": 3, "paper": 5}
#: sgin's learners train 4 seeds at the default scale: with 3, one seed's lead over the best
#: constant decided significance (paired, t₂ = 4.30; e.g. MAML-MADFRL's 14.9 / 32.6 / 40.9
#: gave 29.5 ± 32.9 on one run); a 4th costs about 1 min of the default grid (docs/sgin.md)
_SGIN_SEEDS = {"smoke": 2, "default": 4, "paper": 5}


def _m(scenario, name, kind, label, **kw) -> Method:
    if kind == "learner":
        kw.setdefault("train_seeds", dict(_LEARNER_SEEDS))
    return Method(scenario, name, kind, label, **kw)


_BEST_CONSTANT = "best constant policy (ref.)"

REGISTRY: dict[tuple[str, str], Method] = {
    (m.scenario, m.name): m
    for m in (
        _m("sgin", "marto", "heuristic", "MARTO"),
        _m("sgin", "mamcc", "heuristic", "MAMCC"),
        _m("sgin", "magcs", "heuristic", "MAGCS"),
        _m("sgin", "best_response", "reference", "best response (ref.)"),
        _m("sgin", "stackelberg", "reference", "Stackelberg (ref.)"),
        _m("sgin", "best_constant", "reference", _BEST_CONSTANT),
        _m("sgin", "maml_madfrl", "learner", "MAML-MADFRL (proposed)", module="madfrl",
           train_seeds=_SGIN_SEEDS),
        _m("sgin", "madfrl", "learner", "MADFRL (scratch)", module="madfrl",
           train_seeds=_SGIN_SEEDS),
        _m("sgin", "mappo", "learner", "MAPPO", module="mappo",
           train_seeds=_SGIN_SEEDS),
        _m("dt_deploy", "rd", "heuristic", "RD"),
        _m("dt_deploy", "greedy", "reference", "greedy (ref.)"),
        _m("dt_deploy", "sequential_greedy", "reference", "sequential greedy (ref.)"),
        _m("dt_deploy", "best_constant", "reference", _BEST_CONSTANT),
        _m("dt_deploy", "optimal", "reference", "optimum (ref.)", jittable=False),
        _m("dt_deploy", "proposed", "learner", "proposed (VDN)", module="value_decomp"),
        _m("dt_deploy", "iql", "learner", "IQL", module="value_decomp"),
        _m("dt_deploy", "qmix", "learner", "QMIX", module="value_decomp"),
        _m("spectrum", "average_budget", "heuristic", "average-budget pricing"),
        _m("spectrum", "average_budget_fair", "reference",
           "average-budget pricing, best fixed power (ref.)"),
        _m("spectrum", "best_constant", "reference", _BEST_CONSTANT),
        _m("spectrum", "myopic_optimal", "reference", "myopic optimum (ref.)"),
        _m("spectrum", "proposed", "learner", "proposed (DDQN + reputation FL)",
           module="ddqn"),
        _m("spectrum", "ddqn", "learner", "DDQN", module="ddqn"),
        _m("edge_assoc", "random", "heuristic", "random association"),
        _m("edge_assoc", "average", "heuristic", "average association"),
        _m("edge_assoc", "full_data", "heuristic", "full data"),
        _m("edge_assoc", "orthogonal", "reference", "orthogonal bandwidth (ref.)"),
        _m("edge_assoc", "search", "reference", "search over associations (ref., oracle)"),
        _m("edge_assoc", "greedy", "reference", "greedy association (ref.)"),
        _m("edge_assoc", "best_constant", "reference", _BEST_CONSTANT),
        _m("edge_assoc", "proposed", "learner", "proposed (MADDPG)", module="maddpg"),
    )
}


def get(scenario: str, name: str) -> Method:
    try:
        return REGISTRY[(scenario, name)]
    except KeyError:
        known = ", ".join(n for s, n in REGISTRY if s == scenario) or "(no methods)"
        raise KeyError(f"unknown method {name!r} of scenario {scenario!r}; known: {known}"
                       ) from None


def names(scenario: str, kind: str | None = None) -> tuple[str, ...]:
    """Method names of ``scenario`` (of one ``kind`` if given), in registry order."""
    return tuple(n for (s, n), m in REGISTRY.items()
                 if s == scenario and (kind is None or m.kind == kind))


def label(scenario: str, name: str) -> str:
    m = REGISTRY.get((scenario, name))
    return name if m is None else m.label


def is_learner(scenario: str, name: str) -> bool:
    return get(scenario, name).kind == "learner"


def train_seeds(scenario: str, name: str, scale: str) -> int:
    m = get(scenario, name)
    if m.kind != "learner":
        raise ValueError(f"{scenario}/{name} is a {m.kind}, not a learner")
    return int(m.train_seeds[scale])


# ------------------------------------------------------------------ policies
def policy(scenario: str, name: str, env, **kwargs) -> Callable:
    """The policy of a heuristic or reference method (learners: :func:`learned_policy`),
    from ``agents.heuristics.get(scenario, name, env, **kwargs)``; ``kwargs`` are the
    heuristic's own (e.g. the selection episodes of a best constant policy)."""
    m = get(scenario, name)
    if m.kind == "learner":
        raise ValueError(f"{scenario}/{name} is a learner: train it and use learned_policy")
    from agents import heuristics

    return heuristics.get(scenario, name, env, **kwargs)


def learned_policy(scenario: str, name: str, env, config, policy_params, **kwargs):
    """The greedy/deterministic evaluation policy of a trained learner:
    ``agents.<module>.make_policy(env, config, policy_params, **kwargs)`` of its registry
    entry (``config`` is that module's ``Config``)."""
    import importlib

    m = get(scenario, name)
    if m.kind != "learner":
        raise ValueError(f"{scenario}/{name} is a {m.kind}, not a learner")
    module = importlib.import_module(f"agents.{m.module}")
    return module.make_policy(env, config, policy_params, **kwargs)


# ----------------------------------------------------------------- overrides
#: Learner modules whose ``Config`` a ``--set <learner>.<field>=V`` overrides.
LEARNER_MODULES = ("value_decomp", "madfrl", "maml_madfrl", "mappo", "maddpg", "ddqn")
#: Learner modules each scenario's learners train with (nested configs included).
SCENARIO_LEARNERS = {
    "sgin": ("maml_madfrl", "madfrl", "mappo"),
    "dt_deploy": ("value_decomp",),
    "spectrum": ("ddqn",),
    "edge_assoc": ("maddpg",),
}
SET_HELP = """\
--set KEY=VALUE (repeatable) overrides, for every cell it concerns:
  FIELD=V             an env size or param of every selected scenario that has FIELD
                      (e.g. num_users=12, horizon=10; an error if none has it)
  SCENARIO.FIELD=V    an env size or param of one scenario (e.g. sgin.num_mbs=2)
  LEARNER.FIELD=V     a field of agents.LEARNER.Config (e.g. madfrl.actor_lr=1e-3,
                      value_decomp.lr=5e-4); LEARNER is one of
                      value_decomp, madfrl, maml_madfrl, mappo, maddpg, ddqn
VALUE is a Python literal (12, 1e-3, true/false, (64, 64), 'text'); anything else is a
string. Env overrides replace what an experiment passes to jaxsg.make (a figure's
swept axis still sets its own field per point); learner overrides replace fields of
every learner config the cell trains or evaluates with (nested configs too). All
overrides are validated before any compute, stored in each cell file ("overrides"),
added to each record (column "overrides") and listed in report.md; they are part of
the cell's config hash, so a cell computed without them is recomputed."""


@dataclass(frozen=True)
class Overrides:
    """Validated ``--set`` overrides: ``env[scenario][field]`` and
    ``learner[module][field]`` (values already parsed and checked)."""

    env: dict = field(default_factory=dict)
    learner: dict = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.env or self.learner)

    def for_cell(self, scenario: str, method: str | None = None) -> dict:
        """The flat ``{"scenario.field" | "learner.field": value}`` overrides a cell of
        ``scenario`` depends on (learner ones only for learner cells, or cells of no
        single method)."""
        out = {f"{scenario}.{k}": v for k, v in sorted(self.env.get(scenario, {}).items())}
        learned = method is None or (scenario, method) not in REGISTRY or \
            REGISTRY[(scenario, method)].kind == "learner"
        if learned:
            for mod in SCENARIO_LEARNERS.get(scenario, ()):
                out.update({f"{mod}.{k}": v for k, v in sorted(self.learner.get(mod, {}).items())})
        return out


def parse_value(text: str):
    """A ``--set`` value: a Python literal (``true``/``false``/``none`` too), else the text."""
    import ast

    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text
    if isinstance(value, list):
        value = tuple(value)
    return value


def _learner_config_class(module: str):
    import importlib

    return importlib.import_module(f"agents.{module}").Config


def _coerce(default, value, where: str):
    """``value`` in the type of the field's ``default`` (int → float, list → tuple)."""
    if isinstance(default, bool) or isinstance(value, bool):
        if isinstance(default, bool) != isinstance(value, bool):
            raise ValueError(f"{where}: expected {type(default).__name__}, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    if isinstance(default, int) and isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if default is not None and not isinstance(value, type(default)) and \
            not (isinstance(default, (tuple, list)) and isinstance(value, tuple)):
        raise ValueError(f"{where}: expected {type(default).__name__} like {default!r}, "
                         f"got {value!r}")
    return value


def _check_learner(module: str, name: str, value, where: str):
    import dataclasses

    cls = _learner_config_class(module)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        raise ValueError(f"{where}: agents.{module}.Config has no field {name!r}; fields: "
                         f"{', '.join(sorted(fields))}")
    f = fields[name]
    default = f.default if f.default is not dataclasses.MISSING else (
        f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
    value = _coerce(default, value, where)
    try:
        dataclasses.replace(cls(), **{name: value})  # the config's own validation
    except (ValueError, TypeError) as err:
        raise ValueError(f"{where}: {err}") from None
    return value


def _env_accepts(scenario: str, env_kw: dict, where: str) -> bool:
    """Whether ``jaxsg.make(scenario, **env_kw)`` accepts the names; ValueError (naming
    ``where``) for a known name with a bad value."""
    import jaxsg

    try:
        jaxsg.make(scenario, **env_kw)
    except ValueError as err:
        if "unknown field" in str(err):
            return False
        raise ValueError(f"{where}: {err}") from None
    except TypeError as err:
        raise ValueError(f"{where}: {err}") from None
    return True


def resolve_overrides(items: list[str] | None, scenarios: list[str]) -> Overrides:
    """Parse and validate ``--set KEY=VALUE`` items (see :data:`SET_HELP`) against the
    selected ``scenarios``, before any compute. ValueError names the bad item."""
    env: dict = {}
    learner: dict = {}
    scenarios = list(dict.fromkeys(scenarios))
    for item in items or []:
        where = f"--set {item}"
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not text.strip():
            raise ValueError(f"{where}: expected KEY=VALUE")
        value = parse_value(text)
        head, dot, name = key.partition(".")
        if dot and head in LEARNER_MODULES:
            learner.setdefault(head, {})[name] = _check_learner(head, name, value, where)
        elif dot:
            if head not in SCENARIO_LEARNERS:
                raise ValueError(f"{where}: {head!r} is neither a scenario "
                                 f"({', '.join(SCENARIO_LEARNERS)}) nor a learner "
                                 f"({', '.join(LEARNER_MODULES)})")
            if head not in scenarios:
                raise ValueError(f"{where}: scenario {head!r} has no selected experiment "
                                 f"(selected: {', '.join(scenarios) or 'none'})")
            trial = {**env.get(head, {}), name: value}
            if not _env_accepts(head, trial, where):
                raise ValueError(f"{where}: {head} has no env size or param {name!r}")
            env.setdefault(head, {})[name] = value
        else:
            hits = [s for s in scenarios
                    if _env_accepts(s, {**env.get(s, {}), key: value}, where)]
            if not hits:
                raise ValueError(f"{where}: no selected scenario ({', '.join(scenarios)}) "
                                 f"has an env size or param {key!r}")
            for s in hits:
                env.setdefault(s, {})[key] = value
    return Overrides(env, learner)


def apply_learner_overrides(config, learner: dict):
    """``config`` with the fields of ``learner[module]`` replaced wherever a config of
    ``agents.<module>.Config`` appears (the config itself or nested in it)."""
    import dataclasses

    if not learner or not dataclasses.is_dataclass(config) or isinstance(config, type):
        return config
    changes = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        new = apply_learner_overrides(value, learner)
        if new is not value:
            changes[f.name] = new
    for module, fields in learner.items():
        if type(config) is _learner_config_class(module):
            # a cell's overrides come back from JSON: lists are the tuples that were set
            changes.update({k: _tuples(v) for k, v in fields.items()})
    return dataclasses.replace(config, **changes) if changes else config


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


@dataclass
class CellRun:
    """What the grid runner activates around one cell's compute (:func:`cell_run`)."""

    overrides: dict = field(default_factory=dict)  # Overrides.for_cell of the cell
    policy_dir: object = None  # where trained policies are saved (a Path), or None
    eval_only: bool = False
    policies: list = field(default_factory=list)  # checkpoints saved/loaded by the cell


_ACTIVE: CellRun | None = None


def split_overrides(flat: dict) -> tuple[dict, dict]:
    env: dict = {}
    learner: dict = {}
    for key, value in flat.items():
        head, _, name = key.partition(".")
        (learner if head in LEARNER_MODULES else env).setdefault(head, {})[name] = value
    return env, learner


@contextlib.contextmanager
def cell_run(run: CellRun):
    """``with cell_run(CellRun(...)):`` — the cell being computed: :func:`train_or_load`
    saves or loads the trained policies under ``policy_dir`` (:func:`active_run`).
    Overrides and ``--eval-only`` are passed explicitly: the runner hands them to
    ``run_cell`` in the :class:`~sweeps.experiments.RunContext` (``ctx.make``,
    ``ctx.learner_config``, ``ctx.make_train``); nothing is patched."""
    global _ACTIVE
    if _ACTIVE is not None:
        raise RuntimeError("cell_run is not reentrant")
    _ACTIVE = run
    try:
        yield run
    finally:
        _ACTIVE = None


def refuse_training(what: str) -> Callable:
    """A train function that raises when called: under ``--eval-only`` every training
    output is loaded by :func:`train_or_load` (which then never calls its ``train``), so a
    cell that trains anywhere else would silently retrain instead of re-evaluating."""

    def refuse(*args, **kwargs):
        raise RuntimeError(
            f"--eval-only: this cell trains {what} outside sweeps.methods.train_or_load, so "
            "no saved policy can replace the training; route the experiment's training "
            "through train_or_load (train functions from RunContext.make_train)")

    return refuse


def active_run() -> CellRun | None:
    """The :class:`CellRun` of the cell being computed (None outside the grid runner)."""
    return _ACTIVE


# ------------------------------------------------------------- policy store
def _plain(tree):
    """A pytree of dicts/tuples/lists/arrays as nested dicts of NumPy arrays, with the
    sequence types marked, so it restores without a template."""
    import numpy as np

    if isinstance(tree, dict):
        return {"__dict__": {str(k): _plain(v) for k, v in tree.items()}}
    if isinstance(tree, (tuple, list)) and not hasattr(tree, "_fields"):
        return {"__" + type(tree).__name__ + "__": {str(i): _plain(v)
                                                   for i, v in enumerate(tree)}}
    if hasattr(tree, "shape") and hasattr(tree, "dtype"):
        return np.asarray(tree)
    if isinstance(tree, (int, float, bool)):
        return np.asarray(tree)
    raise TypeError(f"train_or_load: cannot store a {type(tree).__name__} (use dicts, "
                    "tuples, lists and arrays)")


def _unplain(node):
    if isinstance(node, dict):
        (kind, items), = node.items()
        if kind == "__dict__":
            return {k: _unplain(v) for k, v in items.items()}
        seq = [_unplain(items[str(i)]) for i in range(len(items))]
        return tuple(seq) if kind == "__tuple__" else seq
    return node


def train_or_load(scenario: str, method: str, identity: dict, train: Callable[[], object]):
    """The one place a learned cell's training output is kept: inside the grid runner,
    save ``train()``'s output (e.g. ``(policy params stacked over training seeds,
    training metrics)``) with ``agents.core.save_checkpoint``, or — with ``--eval-only``
    — load it instead of training (FileNotFoundError naming the file if it was never
    saved). ``identity`` is everything the output depends on besides the code
    (JSON-able: learner config via ``agents.core.config_json``, sizes, seed); the
    cell's env/learner overrides are added to it. Outside the runner: ``train()``."""
    from pathlib import Path

    import flax.serialization

    from agents import core
    from sweeps.io import atomic_write_json

    run = _ACTIVE
    if run is None or run.policy_dir is None:
        return train()
    identity, rel = _saved_identity(run, scenario, method, identity)
    path = Path(run.policy_dir) / rel
    if run.eval_only:
        if not path.exists():
            raise FileNotFoundError(
                f"--eval-only: no saved policy {path} for {scenario}/{method}; run the cell "
                "without --eval-only first")
        out = _unplain(flax.serialization.msgpack_restore(path.read_bytes()))
    else:
        out = train()
        core.save_checkpoint(path, _plain(out))
        atomic_write_json(path.with_suffix(".json"), identity)
    if rel not in run.policies:
        run.policies.append(rel)
    return out


def _saved_identity(run, scenario: str, method: str, identity: dict) -> tuple[dict, str]:
    """(identity with the run's overrides, its file ``<scenario>/<method>-<digest>.msgpack``
    relative to the run's policy directory)."""
    import json

    from sweeps.io import sha256_json

    identity = {**json.loads(json.dumps(identity, sort_keys=True, default=str)),
                "overrides": run.overrides}
    digest = sha256_json({"scenario": scenario, "method": method, **identity})[:16]
    return identity, f"{scenario}/{method}-{digest}.msgpack"


def note_saved(scenario: str, method: str, identity: dict) -> None:
    """List the file :func:`train_or_load` keeps for ``identity`` in the active cell's
    policies: a cell that reuses a training cached in this process names it too."""
    run = _ACTIVE
    if run is None or run.policy_dir is None:
        return
    rel = _saved_identity(run, scenario, method, identity)[1]
    if rel not in run.policies:
        run.policies.append(rel)


def train_batch_or_load(scenario: str, method: str, identity: dict,
                        train_one: Callable[[object], object], batch) -> object:
    """Train ``train_one(elem)`` for every element of ``batch`` (a pytree whose leaves share
    a leading axis: training keys, or keys × axis points) in one batch sharded over the
    local devices (:func:`sweeps.sharding.run_batched`), kept per cell by
    :func:`train_or_load` (loaded instead under ``--eval-only``). The output is NumPy with
    the batch's leading axis (e.g. ``(policy params, training metrics)`` stacked over
    seeds), the same on the train and the load path, so the evaluation that follows
    (``learned_policy`` on ``jax.tree.map(lambda x: x[i], params)`` or as a per-seed tree
    of ``sweeps.sharding.run_axis``) gives the same records either way. ``identity``:
    as :func:`train_or_load` (everything the output depends on besides the code)."""
    import jax
    import numpy as np

    from sweeps.sharding import run_batched

    def train():
        return jax.tree.map(np.asarray, run_batched(train_one, batch))

    return jax.tree.map(np.asarray, train_or_load(scenario, method, identity, train))
