"""``python -m sweeps.grid``: run experiment grids, resumably, and write a report.

    python -m sweeps.grid                          # default experiments, default scale
    python -m sweeps.grid --scale smoke --experiment NAME [--experiment NAME2]
    python -m sweeps.grid --list                   # experiments and their cell counts
    python -m sweeps.grid --no-resume --seed 1 --out /tmp/results
    python -m sweeps.grid --shard 0/2 & python -m sweeps.grid --shard 1/2; wait
    python -m sweeps.grid --report-only            # records/figures/report from cell files
    python -m sweeps.grid --scale smoke --set num_users=12 --experiment dt_deploy_fig7
    python -m sweeps.grid --eval-only --experiment NAME   # re-evaluate saved policies

On-disk layout (``OUT`` is ``--out``, default ``results``; one directory per
scale *and seed*, so ``--seed 1`` never touches seed-0 results)::

    OUT/<scale>/seed-<seed>/           the run directory (RunContext.out_dir)
      .grid.lock                       fcntl lock: one writer at a time (shards share it)
      report.md                        header (date, scale, seed, devices, git commit +
                                       dirty flag, source hash), then one section per
                                       experiment with finished cells on disk
      figures/<png files>              written by each experiment's ``plot``
      policies/<scenario>/<method>-<hash>.msgpack (+ .json)
                                       trained outputs saved by learned cells
                                       (``sweeps.methods.train_or_load``, msgpack via
                                       ``agents.core.save_checkpoint``; the JSON holds
                                       what they depend on: config, seed, overrides)
      <experiment>/
        cells/<cell id>.json           one finished cell: {"format": 2, "experiment",
                                       "cell", "config", "scale", "seed", ["overrides",]
                                       "config_hash", "code": {"commit", "dirty",
                                       "source_hash"}, "policies", "eval_only",
                                       "num_records", "records_hash", "records": [...],
                                       "elapsed_s", "jax_devices", "finished_at"}
        records.csv                    tidy: one row per record of every finished cell;
                                       columns "experiment", "cell", ["overrides",]
                                       then record keys
        records.jsonl                  the same records, one JSON object per line

**Resume** (the default) reuses a cell file only if it is intact and exact: it
parses, its record count and records hash match its records, its config hash
matches the cell's current experiment/cell/scale/seed/config, and it was
computed by the same code (hash of the ``jaxsg``, ``agents`` and ``sweeps``
sources). Otherwise the cell is recomputed with a printed note saying why
(corrupt or truncated, edited, config changed, code changed, empty, record
count mismatch). ``--no-resume`` recomputes every selected cell.

**Overrides** (``--set KEY=VALUE``, see ``--help`` and
:data:`sweeps.methods.SET_HELP`): env sizes/params (``num_users=12``,
``sgin.num_mbs=2``) and learner config fields (``madfrl.actor_lr=1e-3``), validated
before any compute and passed to each cell's ``run_cell`` in ``RunContext.overrides``
(the experiment applies them with ``ctx.make`` / ``ctx.learner_config``). A
cell's overrides join its config hash (so resume recomputes it), its file
(``"overrides"``), every record (column ``overrides``) and the report header.

**Eval-only** (``--eval-only``): the selected cells are recomputed with every
training output loaded from ``policies/`` (:func:`sweeps.methods.train_or_load`)
instead of trained (``RunContext.eval_only``); a train function built by
``ctx.make_train`` raises when called, so a learner trained outside ``train_or_load``
fails instead of silently retraining. Each cell is
reported as reproducing its stored records exactly or not (stderr and report header).

**Subsets merge**: ``--experiment``/``--cells`` compute only the selected
cells, but records, figures and report sections are rebuilt from *every*
intact cell file in the run directory, so other cells and experiments are
never dropped. A cell computed by other code is still reported, flagged as
stale in its section. A ``--cells`` pattern that matches nothing is an error.

**Multi-host**: ``--shard I/N`` computes cell k (in a global order over the
selected experiments) iff ``k % N == I`` and writes only cell files; after all
shards finish, ``--report-only`` writes records, figures and the report.
``--distributed`` calls ``jax.distributed.initialize()`` first (coordinator,
process count and id from the flags or ``JAX_COORDINATOR_ADDRESS``,
``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``; cluster auto-detection otherwise)
and defaults the shard to ``process_index/process_count``. Cells compute on
each process's local devices (``sweeps.sharding``).

Every file is written atomically (:mod:`sweeps.io`; figures are drawn in a
private directory and renamed into place), so a killed sweep loses at most the
cell in flight. The run directory is checked writable and locked
(``fcntl.flock``, released on exit or crash) before any compute; a second run
on it waits (``--lock-wait-s``) or refuses.

Non-finite values in records are stored as ``null`` (empty in CSV), counted,
and reported in a warning line and in ``report.md``. Exit status: 0 on
success, 2 for bad arguments (argparse-style: unknown ``--experiment``,
``--cells`` matching nothing, negative ``--seed``, bad ``--shard``, unwritable
``--out``), 3 when the run directory is locked and ``--lock-wait-s`` ran out;
exceptions from an experiment propagate.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import fnmatch
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before any pyplot import: figures are written, never shown

import jax  # noqa: E402
from tqdm import tqdm  # noqa: E402

from sweeps import methods  # noqa: E402
from sweeps.experiments import (  # noqa: E402
    SCALES,
    Cell,
    Experiment,
    RunContext,
    get_experiment,
    list_experiments,
)
from sweeps.hang import MAX_RESTARTS, RESTARTS_ENV, HangGuard, beat  # noqa: E402, F401
from sweeps.io import (  # noqa: E402
    DirLock,
    LockBusy,
    atomic_write_json,
    check_writable,
    clean_record,
    count_nulls,
    nulls_to_nan,
    read_json_or_none,
    sha256_json,
    to_python,
    write_records_csv,
    write_records_jsonl,
)
from sweeps.methods import Overrides  # noqa: E402
from sweeps.platform import configure_compilation_cache, configure_cpu_runtime  # noqa: E402

__all__ = [
    "ExperimentResult",
    "HangGuard",
    "beat",
    "cell_path",
    "code_version",
    "main",
    "run_dir",
    "run_experiment",
    "to_python",
    "write_report",
]

#: Columns the runner adds to every record (records may not use these keys).
RESERVED_COLUMNS = ("experiment", "cell", "overrides")
#: Version of the cell-file schema; files without it are recomputed.
CELL_FORMAT = 2
#: Packages whose sources define "the code" of a cell.
CODE_PACKAGES = ("jaxsg", "agents", "sweeps")
LOCK_NAME = ".grid.lock"


# ------------------------------------------------------------------- paths
def run_dir(out: Path, scale: str, seed: int = 0) -> Path:
    """``OUT/<scale>/seed-<seed>``: everything one (scale, seed) run writes."""
    return Path(out) / scale / f"seed-{int(seed)}"


def scale_dir(out: Path, scale: str, seed: int = 0) -> Path:
    """Alias of :func:`run_dir` (the name before the seed joined the path)."""
    return run_dir(out, scale, seed)


def experiment_dir(out: Path, scale: str, name: str, seed: int = 0) -> Path:
    return run_dir(out, scale, seed) / name


def cell_path(out: Path, scale: str, name: str, cell_id: str, seed: int = 0) -> Path:
    """``OUT/<scale>/seed-<seed>/<experiment>/cells/<cell id>.json``."""
    return experiment_dir(out, scale, name, seed) / "cells" / f"{cell_id}.json"


def jax_device_names() -> list[str]:
    """The local JAX devices, e.g. ``["cpu:0"]`` or ``["cuda:0", "cuda:1"]``."""
    # "platform:id" by hand: str(device) is "TFRT_CPU_0" in jax 0.9 and "cpu:0" in 0.10
    return [f"{d.platform}:{d.id}" for d in jax.local_devices()]


# ------------------------------------------------------------ code version
def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], check=False, capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def git_commit() -> str | None:
    """``git rev-parse --short HEAD`` of the source tree, or None if unavailable."""
    out = _git("rev-parse", "--short", "HEAD")
    return (out or "").strip() or None


def git_dirty() -> bool | None:
    """Whether tracked files differ from HEAD (None without git)."""
    out = _git("status", "--porcelain", "--untracked-files=no")
    return None if out is None else bool(out.strip())


def _package_dirs() -> list[tuple[str, Path]]:
    dirs = []
    for name in CODE_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            dirs.extend((name, Path(p)) for p in spec.submodule_search_locations)
    return dirs


def source_hash() -> str:
    """SHA-256 over the ``*.py`` files of :data:`CODE_PACKAGES` (relative path and
    bytes, sorted): the code version without git. 16 hex digits."""
    digest = hashlib.sha256()
    for name, root in _package_dirs():
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            digest.update(f"{name}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()[:16]


_CODE_VERSION: dict | None = None


def code_version(refresh: bool = False) -> dict:
    """``{"commit", "dirty", "source_hash"}`` of this process's code (cached).
    Resume compares ``source_hash``; commit and dirty flag are for people."""
    global _CODE_VERSION
    if _CODE_VERSION is None or refresh:
        _CODE_VERSION = {"commit": git_commit(), "dirty": git_dirty(),
                         "source_hash": source_hash()}
    return dict(_CODE_VERSION)


def describe_code(code: dict | None) -> str:
    if not isinstance(code, dict):
        return "unknown code"
    commit = code.get("commit") or "no git"
    dirty = {True: " (dirty)", False: "", None: ""}.get(code.get("dirty"), "")
    return f"{commit}{dirty}, sources {code.get('source_hash') or '?'}"


# ------------------------------------------------------------------- cells
def cell_overrides(exp: Experiment, cell: Cell, overrides: Overrides | None) -> dict:
    """The ``--set`` overrides this cell depends on (flat, JSON-able; {} for none)."""
    if not overrides:
        return {}
    method = cell.config.get("method") if isinstance(cell.config, dict) else None
    return json.loads(json.dumps(overrides.for_cell(exp.scenario, method)))


def cell_identity(exp: Experiment, cell: Cell, ctx: RunContext,
                  overrides: Overrides | None = None) -> dict:
    """What determines a cell's records, besides the code (``overrides`` joins only when
    the cell has some, so cells without overrides keep their hash)."""
    ident = {"experiment": exp.name, "cell": cell.id, "scale": ctx.scale, "seed": ctx.seed,
             "config": cell.json_config}
    over = cell_overrides(exp, cell, overrides)
    if over:
        ident["overrides"] = over
    return ident


def overrides_text(over: dict | None) -> str:
    """``"a.b=1; c.d=(64, 64)"``: the record column and report form of overrides."""
    return "; ".join(f"{k}={v!r}" for k, v in (over or {}).items())


def cell_problem(data: object, exp: Experiment, cell: Cell, ctx: RunContext,
                 code: dict, overrides: Overrides | None = None) -> str | None:
    """Why a stored cell cannot be reused, or None. ``"missing"`` for no file;
    reasons starting with ``"code changed"`` mean the file is intact and
    matches the config but was computed by other code."""
    if data is None:
        return "missing"
    if data == "corrupt":
        return "corrupt or truncated (not valid JSON)"
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        return "corrupt (no record list)"
    records = data["records"]
    if not all(isinstance(r, dict) for r in records):
        return "corrupt (a record is not an object)"
    if data.get("format") != CELL_FORMAT:
        return "written by an older runner (no config/code/record hashes)"
    stored = {k: data.get(k) for k in ("experiment", "cell", "scale", "seed", "config")}
    if data.get("overrides"):
        stored["overrides"] = data["overrides"]
    if sha256_json(stored) != data.get("config_hash"):
        return "edited (its config does not match its config hash)"
    if data.get("num_records") != len(records):
        return (f"record count mismatch (file says {data.get('num_records')}, "
                f"holds {len(records)})")
    if not records:
        return "empty record list"
    if sha256_json(records) != data.get("records_hash"):
        return "edited (its records do not match their hash)"
    identity = cell_identity(exp, cell, ctx, overrides)
    if data["config_hash"] != sha256_json(identity):
        changed = [k for k in dict.fromkeys([*identity, *stored])
                   if stored.get(k) != identity.get(k)]
        return f"config changed ({', '.join(changed) or 'hash'})"
    old = data.get("code") if isinstance(data.get("code"), dict) else {}
    if old.get("source_hash") != code.get("source_hash"):
        return f"code changed (cell: {describe_code(old)}; now: {describe_code(code)})"
    return None


def read_cell(path: Path) -> object:
    """Parsed cell file, ``None`` if missing, ``"corrupt"`` if unreadable."""
    if not path.exists():
        return None
    data = read_json_or_none(path)
    return "corrupt" if data is None else data


def _clean_records(raw: object, where: str) -> list[dict]:
    if isinstance(raw, dict) or not hasattr(raw, "__iter__"):
        raise TypeError(f"{where}: run_cell must return a list of dicts, got {type(raw).__name__}")
    records = []
    for i, record in enumerate(raw):
        try:
            record = clean_record(record)
        except TypeError as err:
            raise TypeError(f"{where}: record {i}: {err}") from None
        clash = [k for k in RESERVED_COLUMNS if k in record]
        if clash:
            raise ValueError(f"{where}: record {i} uses reserved column(s) {clash}")
        records.append(record)
    if not records:
        raise ValueError(f"{where}: run_cell returned no records")
    return records


_GUARD: HangGuard | None = None


def policy_dir(ctx: RunContext) -> Path:
    """``<run dir>/policies``: trained policies saved by learned cells
    (:func:`sweeps.methods.train_or_load`), shared by the experiments of the run."""
    return Path(ctx.out_dir) / "policies"


def _compute_cell(exp: Experiment, cell: Cell, ctx: RunContext, path: Path,
                  overrides: Overrides | None = None, eval_only: bool = False) -> dict:
    start = time.perf_counter()
    if _GUARD is not None:
        _GUARD.busy(f"{exp.name}/{cell.id}")
    run = methods.CellRun(overrides=cell_overrides(exp, cell, overrides),
                          policy_dir=policy_dir(ctx), eval_only=eval_only)
    try:
        with methods.cell_run(run):
            raw = exp.run_cell(cell, dataclasses.replace(ctx, overrides=run.overrides,
                                                         eval_only=eval_only))
    finally:
        if _GUARD is not None:
            _GUARD.busy(None)
    records = _clean_records(raw, f"{exp.name}/{cell.id}")
    identity = cell_identity(exp, cell, ctx, overrides)
    data = {
        "format": CELL_FORMAT,
        **identity,
        "config_hash": sha256_json(identity),
        "code": code_version(),
        "policies": run.policies,
        "eval_only": eval_only,
        "num_records": len(records),
        "records_hash": sha256_json(records),
        "records": records,
        "elapsed_s": time.perf_counter() - start,
        "jax_devices": jax_device_names(),
        "finished_at": _now(),
    }
    atomic_write_json(path, data)
    return data


def _check_cells(exp: Experiment, cells: object) -> list[Cell]:
    cells = list(cells)
    seen: set[str] = set()
    for cell in cells:
        if not isinstance(cell, Cell):
            raise TypeError(f"{exp.name}: cells() must return Cell objects, got {cell!r}")
        if cell.id in seen:
            raise ValueError(f"{exp.name}: duplicate cell id {cell.id!r}")
        seen.add(cell.id)
    return cells


def _note(msg: str) -> None:
    tqdm.write(f"note: {msg}", file=sys.stderr)


# ------------------------------------------------------------- experiments
@dataclass
class ExperimentResult:
    """What one experiment's run produced (records as stored: NaN is None).

    ``computed``/``reused``: cells of this run's selection; ``from_disk``:
    other intact cells merged into the records; ``stale_code``: reported cells
    computed by other code; ``missing``: cells of the grid with no usable file.
    """

    experiment: Experiment
    records: list[dict] = field(default_factory=list)
    computed: int = 0
    reused: int = 0
    from_disk: int = 0
    stale_code: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    compute_s: float = 0.0
    null_counts: dict[str, int] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    report_text: str | None = None
    #: ``--set`` overrides of the reported cells (flat key -> value)
    overrides: dict = field(default_factory=dict)
    #: ``--eval-only``: cell id -> whether its records reproduced the stored ones exactly
    eval_only: dict = field(default_factory=dict)

    @property
    def num_cells(self) -> int:
        """Cells whose records are in :attr:`records`."""
        return self.computed + self.reused + self.from_disk


def select_cells(cells: list[Cell], patterns: list[str] | None) -> list[Cell]:
    """Cells whose id matches any ``fnmatch`` pattern (all cells when ``patterns`` is None)."""
    if not patterns:
        return cells
    return [c for c in cells if any(fnmatch.fnmatchcase(c.id, p) for p in patterns)]


def run_experiment(
    exp: Experiment, ctx: RunContext, *, resume: bool = True, progress: bool | None = None,
    cell_patterns: list[str] | None = None, only: set[str] | None = None,
    compute: bool = True, write_outputs: bool = True, overrides: Overrides | None = None,
    eval_only: bool = False,
) -> ExperimentResult:
    """Run (or reuse) the selected cells of ``exp`` at ``ctx.scale``, then write
    its records, figures and report text from every intact cell file of the
    experiment (selected or not). ``ctx.out_dir`` is the run directory.

    Selection: ``cell_patterns`` (``fnmatch`` on cell ids) and ``only`` (a set
    of ids, e.g. one shard's). ``compute=False`` computes nothing (report
    only); ``write_outputs=False`` writes only cell files (a shard).
    ``progress=None`` shows the progress bar only when stderr is a terminal.
    ``overrides``: validated ``--set`` overrides (:func:`sweeps.methods.resolve_overrides`).
    ``eval_only``: recompute the selected cells with every trained policy loaded from
    ``<run dir>/policies`` instead of trained; each cell is reported as reproducing its
    stored records exactly or not.
    """
    exp_dir = Path(ctx.out_dir) / exp.name
    all_cells = _check_cells(exp, exp.cells(ctx.scale))
    todo = select_cells(all_cells, cell_patterns)
    if only is not None:
        todo = [c for c in todo if c.id in only]
    if not compute:
        todo = []
    result = ExperimentResult(exp)
    code = code_version()
    done: dict[str, dict] = {}

    bar = tqdm(total=len(todo), desc=exp.name, unit="cell", file=sys.stderr,
               disable=(None if progress is None else not progress) if todo else True)
    with bar:
        for cell in todo:
            bar.set_postfix_str(cell.id, refresh=False)
            path = exp_dir / "cells" / f"{cell.id}.json"
            if eval_only:
                old = read_cell(path)
                data = _compute_cell(exp, cell, ctx, path, overrides, eval_only=True)
                result.computed += 1
                same = isinstance(old, dict) and old.get("records_hash") == data["records_hash"]
                result.eval_only[cell.id] = same
                verdict = ("reproduce the stored ones exactly" if same else
                           "DIFFER from the stored ones" if isinstance(old, dict) else
                           "written (no stored cell to compare with)")
                print(f"{exp.name}/{cell.id}: eval-only records {verdict}", file=sys.stderr)
                result.compute_s += float(data.get("elapsed_s") or 0.0)
                done[cell.id] = data
                bar.update(1)
                continue
            data = read_cell(path) if resume else None
            problem = (cell_problem(data, exp, cell, ctx, code, overrides) if resume
                       else "no-resume")
            if problem is None:
                result.reused += 1
            else:
                if problem not in ("missing", "no-resume"):
                    _note(f"{exp.name}/{cell.id}: cell file {problem}; recomputing")
                data = _compute_cell(exp, cell, ctx, path, overrides)
                result.computed += 1
            result.compute_s += float(data.get("elapsed_s") or 0.0)
            done[cell.id] = data
            bar.update(1)
    if not write_outputs:
        return result

    for cell in all_cells:  # records from every intact cell file, in grid order
        data = done.get(cell.id)
        if data is None:
            data = read_cell(exp_dir / "cells" / f"{cell.id}.json")
            problem = cell_problem(data, exp, cell, ctx, code,
                                   _stored_overrides(data, overrides))
            if problem is not None and not problem.startswith("code changed"):
                result.missing.append(cell.id)
                if problem != "missing":
                    _note(f"{exp.name}/{cell.id}: cell file {problem}; not in the report")
                continue
            if problem is not None:
                result.stale_code.append(cell.id)
            result.from_disk += 1
            result.compute_s += float(data.get("elapsed_s") or 0.0)
        over = data.get("overrides") or {}
        if over:
            result.overrides.update(over)
        extra = {"overrides": overrides_text(over)} if over else {}
        for record in data["records"]:
            result.records.append({"experiment": exp.name, "cell": cell.id, **extra, **record})
    if not result.records:
        return result  # nothing on disk for this experiment: no outputs

    leading = RESERVED_COLUMNS if result.overrides else RESERVED_COLUMNS[:2]
    write_records_csv(exp_dir / "records.csv", result.records, leading=leading)
    write_records_jsonl(exp_dir / "records.jsonl", result.records)
    if result.stale_code:
        print(f"warning: {exp.name}: {len(result.stale_code)} reported cell(s) were computed "
              f"by other code ({', '.join(result.stale_code[:5])}"
              f"{', ...' if len(result.stale_code) > 5 else ''}); rerun them to refresh",
              file=sys.stderr)

    result.null_counts = count_nulls(result.records)
    if result.null_counts:
        print(f"warning: {exp.name}: {_null_summary(result.null_counts)}", file=sys.stderr)

    plot_records = nulls_to_nan(result.records)
    if exp.plot is not None:
        result.figures = _plot_atomically(exp, plot_records, Path(ctx.out_dir) / "figures")
    if exp.report is not None:
        result.report_text = exp.report(plot_records)
    return result


def _stored_overrides(data: object, overrides: Overrides | None) -> Overrides | None:
    """For merging cells from disk: the run's overrides, or (report-only, merge of
    other experiments) the overrides the cell file was computed with."""
    if overrides or not isinstance(data, dict) or not data.get("overrides"):
        return overrides
    env, learner = methods.split_overrides(data["overrides"])
    return Overrides(env, learner)


def _plot_atomically(exp: Experiment, records: list[dict], fig_dir: Path) -> list[Path]:
    """``exp.plot`` into a private directory, then each file renamed into ``fig_dir``."""
    import matplotlib.pyplot as plt

    fig_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=fig_dir, prefix=f".{exp.name}.", suffix=".tmp"))
    figures = []
    try:
        for fig in [Path(p) for p in (exp.plot(records, tmp) or [])]:
            if fig.parent.resolve() == tmp.resolve() and fig.exists():
                os.replace(fig, fig_dir / fig.name)
                fig = fig_dir / fig.name
            if not fig.exists():
                print(f"warning: {exp.name}: plot returned missing file {fig}", file=sys.stderr)
            figures.append(fig)
    finally:
        plt.close("all")
        shutil.rmtree(tmp, ignore_errors=True)
    return figures


def _null_summary(counts: dict[str, int]) -> str:
    per_key = ", ".join(f"{k}: {n}" for k, n in counts.items())
    return f"{sum(counts.values())} NaN/inf value(s) stored as null ({per_key})"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------ report
def write_report(path: Path, ctx: RunContext, results: list[ExperimentResult]) -> Path:
    """Write ``report.md`` atomically (:func:`sweeps.report.write_report`): the claims
    summary table first, the run header (commit, dirty flag, source hash), then one
    section per experiment with its figures (PNG linked, PDF beside it), warnings for
    incomplete or stale cells, report text and verdicts."""
    from sweeps.io import atomic_write_text
    from sweeps.report import write_report as _write

    path = _write(path, ctx, results)
    over = {k: v for r in results for k, v in r.overrides.items()}
    evals = {f"{r.experiment.name}/{c}": ok for r in results for c, ok in r.eval_only.items()}
    extra = []
    if over:
        extra.append(f"- overrides (`--set`): {overrides_text(over)}")
    if evals:
        same = sum(evals.values())
        extra.append(f"- `--eval-only`: {len(evals)} cell(s) re-evaluated from saved policies, "
                     f"{same} reproduce their stored records exactly"
                     + (f"; differ: {', '.join(k for k, ok in evals.items() if not ok)}"
                        if same < len(evals) else ""))
    if extra:  # into the run header, after the code line
        lines = Path(path).read_text(encoding="utf-8").split("\n")
        at = next((i + 1 for i, line in enumerate(lines) if line.startswith("- git commit")),
                  None)
        if at is None:
            at = len(lines)
        atomic_write_text(path, "\n".join(lines[:at] + extra + lines[at:]))
    return path


# --------------------------------------------------------------------- CLI
def _shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard must be I/N, got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise argparse.ArgumentTypeError(f"--shard I/N needs N >= 1 and 0 <= I < N, got {text!r}")
    return i, n


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sweeps.grid",
        description="Run jaxsg experiment grids (resumable) and write figures and a report.",
        epilog=methods.SET_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scale", choices=SCALES, default="default",
                        help="grid size: smoke (seconds), default (minutes on a laptop CPU), paper")
    parser.add_argument("--experiment", action="append", metavar="NAME",
                        help="run this experiment (repeatable; default: every default experiment)")
    parser.add_argument("--out", type=Path, default=Path("results"), metavar="DIR",
                        help="output root; a run writes OUT/<scale>/seed-<seed> (default: results)")
    parser.add_argument("--xla-cache", type=str, default=None, metavar="DIR",
                        help="JAX's persistent compilation cache: the grid's cells rebuild the "
                        "same programs, which then compile once (default: OUT/.xla-cache; "
                        "'' turns it off; a cache configured already is kept)")
    parser.add_argument("--list", action="store_true",
                        help="list experiments with their number of cells at --scale, then exit")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                        help="reuse finished cells whose config, code and records match "
                        "(default: on)")
    parser.add_argument("--seed", type=int, default=0, help="base seed given to every cell (>= 0)")
    parser.add_argument("--hang-restart-s", type=float, default=120.0, metavar="S",
                        help="restart the grid (resuming) when a cell shows no progress for S "
                        "seconds (no heartbeat, and on CPU no CPU use): a known jaxlib CPU "
                        "hang; 0 disables (default: 120)")
    parser.add_argument("--cells", action="append", metavar="PATTERN",
                        help="only cells whose id matches this fnmatch pattern (repeatable, "
                        "comma-separated allowed), e.g. --cells 'marto,best_response'")
    parser.add_argument("--shard", type=_shard, metavar="I/N",
                        help="compute only shard I of N of the selected cells and write only "
                        "cell files; then run --report-only")
    parser.add_argument("--report-only", action="store_true",
                        help="compute nothing: write records, figures and report.md from the "
                        "finished cell files")
    parser.add_argument("--distributed", action="store_true",
                        help="call jax.distributed.initialize() first; the shard defaults to "
                        "process_index/process_count")
    parser.add_argument("--coordinator", metavar="HOST:PORT",
                        help="with --distributed (default: $JAX_COORDINATOR_ADDRESS)")
    parser.add_argument("--num-processes", type=int, metavar="N",
                        help="with --distributed (default: $JAX_NUM_PROCESSES)")
    parser.add_argument("--process-id", type=int, metavar="I",
                        help="with --distributed (default: $JAX_PROCESS_ID)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", dest="overrides",
                        help="override an env size/param or a learner config field "
                        "(repeatable; see below), e.g. --set num_users=12 "
                        "--set sgin.num_mbs=2 --set madfrl.actor_lr=1e-3")
    parser.add_argument("--eval-only", action="store_true",
                        help="recompute the selected cells with the trained policies saved "
                        "in <run dir>/policies (no training) and say whether each cell's "
                        "records reproduce the stored ones exactly")
    parser.add_argument("--lock-wait-s", type=float, default=None, metavar="S",
                        help="wait at most S seconds for another run on the same directory "
                        "(default: wait until it finishes; 0: refuse at once)")
    return parser


def _print_listing(experiments: list[Experiment], scale: str) -> None:
    rows = [("name", "scenario", f"cells@{scale}", "default", "title")]
    for exp in experiments:
        n = len(exp.cells(scale))
        rows.append((exp.name, exp.scenario, str(n), "yes" if exp.default else "no", exp.title))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])


def _distributed_init(args: argparse.Namespace) -> tuple[int, int]:
    env = os.environ
    kwargs = {}
    coordinator = args.coordinator or env.get("JAX_COORDINATOR_ADDRESS")
    num = args.num_processes if args.num_processes is not None else env.get("JAX_NUM_PROCESSES")
    pid = args.process_id if args.process_id is not None else env.get("JAX_PROCESS_ID")
    if coordinator:
        kwargs["coordinator_address"] = coordinator
    if num is not None:
        kwargs["num_processes"] = int(num)
    if pid is not None:
        kwargs["process_id"] = int(pid)
    jax.distributed.initialize(**kwargs)
    return jax.process_index(), jax.process_count()


def _on_disk(ctx: RunContext, exp: Experiment) -> bool:
    cells = Path(ctx.out_dir) / exp.name / "cells"
    return cells.is_dir() and any(cells.glob("*.json"))


def main(argv: list[str] | None = None, hang_guard: bool | None = None) -> int:
    """CLI entry point; returns the exit status (argument errors raise
    ``SystemExit(2)`` via argparse, with the message on stderr).

    ``hang_guard`` (default: only when run as the command, ``argv is None``)
    starts the :class:`~sweeps.hang.HangGuard`, which may re-execute this
    process's command line.
    """
    configure_cpu_runtime()  # the entry point owns the platform settings
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    if args.report_only and args.shard is not None:
        parser.error("--report-only writes the report of all shards; it takes no --shard")
    if args.report_only and args.eval_only:
        parser.error("--eval-only computes cells; it cannot be combined with --report-only")
    shard = args.shard
    if args.distributed and not args.list:  # before anything touches a JAX backend
        index, count = _distributed_init(args)
        print(f"distributed: process {index} of {count}")
        if shard is None and count > 1 and not args.report_only:
            shard = (index, count)

    if not args.list and not args.report_only:
        configure_compilation_cache(Path(args.out, ".xla-cache") if args.xla_cache is None
                                    else args.xla_cache)
    registered = list_experiments()
    if args.experiment:
        selected = []
        for name in dict.fromkeys(args.experiment):
            try:
                selected.append(get_experiment(name))
            except KeyError as err:
                parser.error(err.args[0])
    else:
        selected = [e for e in registered if e.default]

    if args.list:
        _print_listing(selected if args.experiment else registered, args.scale)
        return 0
    try:  # every --set validated before anything is computed
        overrides = methods.resolve_overrides(args.overrides, [e.scenario for e in selected])
    except ValueError as err:
        parser.error(str(err))
    args.resolved_overrides = overrides
    if overrides:
        print(f"overrides: {overrides_text(_flat(overrides))}")

    patterns = None
    if args.cells:
        patterns = [p.strip() for arg in args.cells for p in arg.split(",") if p.strip()]
        if not patterns:
            parser.error("--cells: no pattern given")
    # The global cell order every shard agrees on.
    plan = [(exp, c) for exp in selected
            for c in select_cells(_check_cells(exp, exp.cells(args.scale)), patterns)]
    if patterns:
        ids = [c.id for exp in selected for c in exp.cells(args.scale)]
        unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(i, p) for i in ids)]
        if unmatched:
            names = ", ".join(e.name for e in selected) or "(no experiment)"
            parser.error(f"--cells pattern(s) {unmatched} match no cell of {names} at scale "
                         f"{args.scale!r} (see --list)")

    if shard is not None:
        plan = [item for k, item in enumerate(plan) if k % shard[1] == shard[0]]

    ctx = RunContext(scale=args.scale, seed=args.seed,
                     out_dir=run_dir(args.out, args.scale, args.seed))
    try:
        check_writable(ctx.out_dir)
    except OSError as err:
        parser.error(f"--out: {err.strerror or err}")
    if not selected:
        print("warning: no experiments selected (none registered with default=True)",
              file=sys.stderr)
    old = [d.parent.name for d in sorted(Path(args.out, args.scale).glob("*/cells"))]
    if old:
        print(f"note: {Path(args.out, args.scale)} holds results of the layout before the seed "
              f"joined the path ({', '.join(old[:3])}{', ...' if len(old) > 3 else ''}); they "
              f"are not reused: this run writes {ctx.out_dir}", file=sys.stderr)

    lock = DirLock(Path(ctx.out_dir) / LOCK_NAME, shared=shard is not None,
                   wait_s=args.lock_wait_s)
    shard_lock = None
    if shard is not None:
        shard_lock = DirLock(Path(ctx.out_dir) / f"{LOCK_NAME}.shard-{shard[0]}-of-{shard[1]}",
                             wait_s=args.lock_wait_s)
    try:
        lock.acquire()
        if shard_lock is not None:
            shard_lock.acquire()
    except LockBusy as err:
        lock.release()
        print(f"error: {err}; not running (use another --out or --lock-wait-s)",
              file=sys.stderr)
        return 3

    global _GUARD
    if hang_guard is None:
        hang_guard = argv is None
    if hang_guard and args.hang_restart_s > 0 and _GUARD is None and not args.report_only:
        _GUARD = HangGuard(args.hang_restart_s)
    try:
        return _run(args, ctx, selected, registered, plan, patterns, shard)
    finally:
        if shard_lock is not None:
            shard_lock.release()
        lock.release()


def _flat(overrides: Overrides) -> dict:
    out = {f"{s}.{k}": v for s, kv in overrides.env.items() for k, v in kv.items()}
    out.update({f"{m}.{k}": v for m, kv in overrides.learner.items() for k, v in kv.items()})
    return out


def _clear_experiment_caches() -> None:
    """Drop the in-process caches (``functools.lru_cache``) of experiment modules, e.g.
    trained policies shared by experiments: a new ``main`` call may bring other
    overrides or ``--eval-only``, and the caches do not key on those."""
    for name, module in list(sys.modules.items()):
        if name.startswith("sweeps.experiments") and module is not None:
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)):
                    value.cache_clear()


def _run(args, ctx, selected, registered, plan, patterns, shard) -> int:
    _clear_experiment_caches()
    todo: dict[str, set[str]] = {}
    for exp, cell in plan:
        todo.setdefault(exp.name, set()).add(cell.id)
    results = []
    for exp in selected if not args.report_only else []:
        if exp.name not in todo:
            continue
        res = run_experiment(exp, ctx, resume=args.resume, cell_patterns=patterns,
                             only=todo[exp.name], write_outputs=shard is None,
                             overrides=args.resolved_overrides, eval_only=args.eval_only)
        if shard is None:
            results.append(res)
            print(f"{exp.name}: {res.num_cells} cells ({res.computed} computed, "
                  f"{res.reused + res.from_disk} reused), {len(res.records)} records -> "
                  f"{Path(ctx.out_dir) / exp.name}")
        else:
            print(f"{exp.name}: shard {shard[0]}/{shard[1]}: {res.computed + res.reused} cells "
                  f"({res.computed} computed, {res.reused} reused)")
    if shard is not None:
        print(f"shard {shard[0]}/{shard[1]} done; when every shard has finished, run the same "
              "command with --report-only instead of --shard")
        return 0
    # Merge: every other experiment with cell files here keeps its records and section.
    ran = {r.experiment.name for r in results}
    for exp in registered:
        if exp.name not in ran and _on_disk(ctx, exp):
            res = run_experiment(exp, ctx, compute=False)
            if res.records:
                results.append(res)
                if args.report_only:
                    print(f"{exp.name}: {res.num_cells} cells from disk"
                          f"{f', {len(res.missing)} missing' if res.missing else ''}, "
                          f"{len(res.records)} records -> {Path(ctx.out_dir) / exp.name}")
            for cell_id in res.missing if args.report_only else []:
                print(f"warning: {exp.name}/{cell_id}: no usable cell file", file=sys.stderr)
    order = {e.name: i for i, e in enumerate(registered)}
    results.sort(key=lambda r: order.get(r.experiment.name, len(order)))
    report = write_report(Path(ctx.out_dir) / "report.md", ctx, results)
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
