"""The experiment registry of ``python -m sweeps.grid``.

An :class:`Experiment` is one paper figure (or table): a list of grid
:class:`Cell` s at a given scale, a function that computes one cell's tidy
records, and optional ``plot``/``report`` functions over all the records.
Every experiment module is listed in :data:`EXPERIMENT_MODULES` (the one
registry) and exposes ``EXPERIMENTS: list[Experiment]``; the registry imports
those modules lazily, on the first :func:`get_experiment`/:func:`list_experiments`
call, and registers their lists (no registration as an import side effect).
Paper figures are declared in :mod:`sweeps.figures` (a table entry per figure)
and served by its generic cell runner; bespoke studies keep their own code.

    def cells(scale: str) -> list[Cell]:
        n = {"smoke": 2, "default": 8, "paper": 32}[scale]
        return [Cell(f"users-{u}", {"users": u}) for u in range(2, 2 + n)]

    def run_cell(cell: Cell, ctx: RunContext) -> list[dict]:
        ...   # vmapped over seeds/numeric axes via sweeps.sharding.run_batched
        return [{"users": u, "seed": s, "throughput_bps": float(x)} for ...]

    EXPERIMENTS = [Experiment(
        name="sgin_fig3", scenario="sgin", title="Throughput vs users (Fig. 3)",
        cells=cells, run_cell=run_cell, plot=plot, report=report, claims=claims)]

Contract:

* ``cells(scale)`` is deterministic; cell ids are filesystem-safe and unique
  within the experiment (they name the files ``cells/<id>.json``).
* ``run_cell(cell, ctx)`` depends only on ``cell.config``, ``ctx.seed`` and
  ``ctx.overrides`` (``--set``; every experiment builds its envs with ``ctx.make``, its
  learner configs with ``ctx.learner_config`` and its
  train functions with ``ctx.make_train``, and keeps every training output through
  :func:`sweeps.methods.train_or_load`, so ``--eval-only`` re-evaluates without training)
  (not on the device count, not on which other cells ran) and returns flat
  records: dicts of ``str``/``int``/``float``/``bool`` (NumPy/JAX scalars are
  converted). The columns ``experiment`` and ``cell`` are added by the runner.
* ``plot(records, fig_dir)`` writes PNG and PDF files into ``fig_dir`` (shared by
  all experiments, so prefix file names with the experiment name) and returns
  their paths. ``report(records)`` returns Markdown computed from the records
  (no fixed numbers or rankings). ``claims(records)`` returns the paper claims
  (:class:`sweeps.report.Claim`) with their verdicts, for the summary table at the
  top of ``report.md``. All receive NaN where a value was non-finite.
* Records follow ``docs/evaluation.md`` §5: ``scenario, method, axis, axis_value,
  seed, episode`` (where applicable) then metric columns named with their unit.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The experiment registry: every module here exposes ``EXPERIMENTS``. A module that
#: does not exist (yet) is skipped; any other import error propagates.
EXPERIMENT_MODULES: list[str] = [
    "sweeps.experiments.sgin",
    "sweeps.experiments.sgin_learners",
    "sweeps.experiments.dt_deploy",
    "sweeps.experiments.spectrum",
    "sweeps.experiments.edge_assoc",
]

SCALES: tuple[str, ...] = ("smoke", "default", "paper")

_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=+-]*$")


def _check_safe_name(what: str, value: str) -> None:
    if not isinstance(value, str) or not _SAFE_NAME.match(value) or len(value) > 200:
        raise ValueError(
            f"{what} {value!r} is not filesystem-safe: use letters, digits and "
            "'_.=+-', not starting with '.', '-', '+' or '=' (at most 200 characters)"
        )


@dataclass(frozen=True)
class Cell:
    """One grid cell: a filesystem-safe ``id`` and a JSON-serialisable ``config``."""

    id: str
    config: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_safe_name("cell id", self.id)
        try:
            json.dumps(self.config, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise TypeError(f"cell {self.id!r}: config is not JSON-serialisable: {err}") from None

    @property
    def json_config(self) -> Any:
        """The config as it reads back from JSON (tuples become lists)."""
        return json.loads(json.dumps(self.config, allow_nan=False))


@dataclass(frozen=True)
class RunContext:
    """What ``run_cell`` gets besides the cell: the scale, the base seed of the
    run (``--seed``), the scale's output directory (``OUT/<scale>``) and the cell's
    ``--set`` overrides (flat ``{"scenario.field" | "learner.field": value}``, already
    validated by :func:`sweeps.methods.resolve_overrides`), which an experiment applies
    explicitly: envs through :meth:`make`, learner configs through :meth:`learner_config`,
    train functions through :meth:`make_train` (which also enforces ``--eval-only``)."""

    scale: str
    seed: int = 0
    out_dir: Path = Path("results")
    overrides: dict = field(default_factory=dict, compare=False)
    #: ``--eval-only``: every training output is loaded by :func:`sweeps.methods.train_or_load`;
    #: a train function built by :meth:`make_train` raises when called
    eval_only: bool = field(default=False, compare=False)

    def make(self, scenario: str, **kwargs):
        """``jaxsg.make(scenario, **kwargs)`` with this cell's env overrides of
        ``scenario`` replacing the experiment's kwargs."""
        import jaxsg
        from sweeps.methods import split_overrides

        env, _ = split_overrides(self.overrides)
        return jaxsg.make(scenario, **{**kwargs, **env.get(scenario, {})})

    def learner_config(self, config):
        """``config`` (an ``agents.<learner>.Config``, nested configs too) with this cell's
        learner overrides applied."""
        from sweeps.methods import apply_learner_overrides, split_overrides

        _, learner = split_overrides(self.overrides)
        return apply_learner_overrides(config, learner)

    def make_train(self, factory: Callable, env, config, **kwargs):
        """``factory(env, self.learner_config(config), **kwargs)``: the cell's train function
        (``factory`` is a learner's ``make_train``, or e.g. ``value_decomp.make_sweep``).
        With ``eval_only`` it is not built: the function returned raises when called, since
        under ``--eval-only`` :func:`sweeps.methods.train_or_load` loads the training output
        and never calls its ``train`` (a cell that trains elsewhere would silently retrain)."""
        from sweeps.methods import refuse_training

        config = self.learner_config(config)
        if self.eval_only:
            return refuse_training(f"{factory.__module__}.{factory.__name__}")
        return factory(env, config, **kwargs)


@dataclass(frozen=True)
class Experiment:
    """One reproducible figure/table: its grid, cell function, plot and report."""

    name: str
    scenario: str
    title: str
    cells: Callable[[str], list[Cell]]
    run_cell: Callable[[Cell, RunContext], list[dict]]
    plot: Callable[[list[dict], Path], list[Path]] | None = None
    report: Callable[[list[dict]], str] | None = None
    default: bool = True
    claims: Callable[[list[dict]], list] | None = None

    def __post_init__(self) -> None:
        _check_safe_name("experiment name", self.name)


_REGISTRY: dict[str, Experiment] = {}
_modules_loaded = False


def register_experiment(exp: Experiment, *, replace: bool = False) -> Experiment:
    """Add ``exp`` to the registry (ValueError if another experiment already has
    its name, unless ``replace``). Returns ``exp``."""
    if not isinstance(exp, Experiment):
        raise TypeError(f"expected an Experiment, got {type(exp).__name__}")
    old = _REGISTRY.get(exp.name)
    if old is not None and old is not exp and not replace:
        raise ValueError(f"experiment {exp.name!r} is already registered")
    _REGISTRY[exp.name] = exp
    return exp


def load_experiment_modules() -> None:
    """Import every module of :data:`EXPERIMENT_MODULES` that exists (once) and
    register its ``EXPERIMENTS``."""
    global _modules_loaded
    if _modules_loaded:
        return
    for name in EXPERIMENT_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:  # the module exists but one of its imports is missing
                raise
            continue
        for exp in getattr(module, "EXPERIMENTS", ()):
            register_experiment(exp)
    _modules_loaded = True


def list_experiments() -> list[Experiment]:
    """All registered experiments, in registration order."""
    load_experiment_modules()
    return list(_REGISTRY.values())


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name`` (KeyError listing the known names)."""
    load_experiment_modules()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(_REGISTRY) or "(none registered)"
        raise KeyError(f"unknown experiment {name!r}; known experiments: {known}") from None
