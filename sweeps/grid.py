"""``python -m sweeps.grid``: run experiment grids, resumably, and write a report.

    python -m sweeps.grid                          # default experiments, default scale
    python -m sweeps.grid --scale smoke --experiment NAME [--experiment NAME2]
    python -m sweeps.grid --list                   # experiments and their cell counts
    python -m sweeps.grid --no-resume --seed 1 --out /tmp/results

On-disk layout (``OUT`` is ``--out``, default ``results``)::

    OUT/<scale>/
      report.md                        header (date, scale, seed, devices, git commit),
                                       then per experiment: figures + report text
      figures/<png files>              written by each experiment's ``plot``
      <experiment>/
        cells/<cell id>.json           one finished cell: {"experiment", "cell", "config",
                                       "scale", "seed", "records": [...], "elapsed_s",
                                       "jax_devices", "finished_at"}
        records.csv                    tidy: one row per record of every cell; columns
                                       "experiment", "cell", then the union of record keys
        records.jsonl                  the same records, one JSON object per line

Every file is written atomically (:mod:`sweeps.io`), so a killed sweep loses at
most the cell in flight. With ``--resume`` (the default) a cell whose file
exists, parses and matches the cell's experiment, scale, seed and config is
reused; a corrupt file (partial or invalid JSON) or a stale one (config or
seed changed) is recomputed. ``--no-resume`` recomputes every cell.

Non-finite values in records are stored as ``null`` (empty in CSV), counted,
and reported in a warning line and in ``report.md``. Exit status: 0 on
success, 2 for bad arguments (argparse-style, including an unknown
``--experiment``); exceptions from an experiment propagate.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before any pyplot import: figures are written, never shown

import jax  # noqa: E402
from tqdm import tqdm  # noqa: E402

from sweeps.experiments import (  # noqa: E402
    SCALES,
    Cell,
    Experiment,
    RunContext,
    get_experiment,
    list_experiments,
)
from sweeps.io import (  # noqa: E402
    atomic_write_json,
    atomic_write_text,
    clean_record,
    count_nulls,
    nulls_to_nan,
    read_json_or_none,
    to_python,
    write_records_csv,
    write_records_jsonl,
)
from sweeps.platform import configure_cpu_runtime  # noqa: E402

__all__ = [
    "ExperimentResult",
    "cell_path",
    "main",
    "run_experiment",
    "to_python",
    "write_report",
]

#: Columns the runner adds to every record (records may not use these keys).
RESERVED_COLUMNS = ("experiment", "cell")


# ------------------------------------------------------------------- paths
def scale_dir(out: Path, scale: str) -> Path:
    return Path(out) / scale


def experiment_dir(out: Path, scale: str, name: str) -> Path:
    return scale_dir(out, scale) / name


def cell_path(out: Path, scale: str, name: str, cell_id: str) -> Path:
    """``OUT/<scale>/<experiment>/cells/<cell id>.json``."""
    return experiment_dir(out, scale, name) / "cells" / f"{cell_id}.json"


def jax_device_names() -> list[str]:
    """The local JAX devices, e.g. ``["cpu:0"]`` or ``["cuda:0", "cuda:1"]``."""
    # "platform:id" by hand: str(device) is "TFRT_CPU_0" in jax 0.9 and "cpu:0" in 0.10
    return [f"{d.platform}:{d.id}" for d in jax.local_devices()]


def git_commit() -> str | None:
    """``git rev-parse --short HEAD`` of the source tree, or None if unavailable."""
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            check=False,
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.strip() or None


# ------------------------------------------------------------------- cells
def _reuse_problem(data: object, exp: Experiment, cell: Cell, ctx: RunContext) -> str | None:
    """Why a stored cell cannot be reused ("missing", "corrupt", "stale: ..."), or None."""
    if data is None:
        return "missing"
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        return "corrupt"
    if not all(isinstance(r, dict) for r in data["records"]):
        return "corrupt"
    for key, want in (
        ("experiment", exp.name),
        ("cell", cell.id),
        ("scale", ctx.scale),
        ("seed", ctx.seed),
        ("config", cell.json_config),
    ):
        if data.get(key) != want:
            return f"stale: {key} changed"
    return None


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
    return records


# ------------------------------------------------------------ hang guard
#: Environment variable counting guard restarts of one grid invocation.
RESTARTS_ENV = "JAXSG_GRID_RESTARTS"
MAX_RESTARTS = 3


class HangGuard:
    """Restart the grid when a cell's computation stops using the CPU.

    jaxlib 0.10's CPU runtime occasionally never finishes a large vmapped
    training program: the main thread waits in ``BlockUntilReady`` while every
    XLA worker sits idle (0 % CPU, observed in ``python -m sweeps.grid`` even with
    the flags ``sweeps/platform.py`` sets). Python cannot interrupt that wait,
    so a daemon thread watches the process CPU time while a cell computes; if it
    advances by less than ``min_cpu_s`` over ``window_s`` seconds of wall time,
    the thread re-executes the same command line. Finished cells are on disk and
    are reused, so a restart loses only the stuck cell; after ``MAX_RESTARTS``
    restarts the guard only warns. ``window_s = 0`` disables it.
    """

    def __init__(self, window_s: float, min_cpu_s: float = 1.0):
        self.window_s, self.min_cpu_s = float(window_s), min_cpu_s
        self._samples: list[tuple[float, float]] = []  # (wall, process CPU) while busy
        self._label: str | None = None
        self._lock = threading.Lock()
        if self.window_s > 0:
            threading.Thread(target=self._watch, name="grid-hang-guard", daemon=True).start()

    def busy(self, label: str | None) -> None:
        with self._lock:
            self._label = label
            self._samples = [] if label is None else [(time.monotonic(), time.process_time())]

    def _watch(self) -> None:
        while True:
            time.sleep(min(5.0, self.window_s / 4))
            with self._lock:
                if not self._samples:
                    continue
                now, cpu = time.monotonic(), time.process_time()
                self._samples.append((now, cpu))
                # the oldest sample at least window_s old: CPU used since then
                old = [s for s in self._samples if now - s[0] >= self.window_s]
                if not old:
                    continue
                self._samples = self._samples[len(old) - 1:]
                if cpu - old[-1][1] >= self.min_cpu_s:
                    continue
                label = self._label
            self._restart(label)

    def _restart(self, label: str) -> None:
        restarts = int(os.environ.get(RESTARTS_ENV, "0"))
        if restarts >= MAX_RESTARTS:
            print(f"warning: {label}: no CPU progress for {self.window_s:.0f} s and "
                  f"{restarts} restarts already; still waiting", file=sys.stderr, flush=True)
            with self._lock:
                self._samples = []
            return
        print(f"warning: {label}: no CPU progress for {self.window_s:.0f} s (a known jaxlib "
              f"CPU hang); restarting the grid ({restarts + 1}/{MAX_RESTARTS}), finished "
              "cells are reused", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os.environ[RESTARTS_ENV] = str(restarts + 1)
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])  # the same command


_GUARD: HangGuard | None = None


def _compute_cell(exp: Experiment, cell: Cell, ctx: RunContext, path: Path) -> dict:
    start = time.perf_counter()
    if _GUARD is not None:
        _GUARD.busy(f"{exp.name}/{cell.id}")
    try:
        raw = exp.run_cell(cell, ctx)
    finally:
        if _GUARD is not None:
            _GUARD.busy(None)
    records = _clean_records(raw, f"{exp.name}/{cell.id}")
    data = {
        "experiment": exp.name,
        "cell": cell.id,
        "config": cell.json_config,
        "scale": ctx.scale,
        "seed": ctx.seed,
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


# ------------------------------------------------------------- experiments
@dataclass
class ExperimentResult:
    """What one experiment's run produced (records as stored: NaN is None)."""

    experiment: Experiment
    records: list[dict] = field(default_factory=list)
    computed: int = 0
    reused: int = 0
    compute_s: float = 0.0
    null_counts: dict[str, int] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    report_text: str | None = None

    @property
    def num_cells(self) -> int:
        return self.computed + self.reused


def select_cells(cells: list[Cell], patterns: list[str] | None) -> list[Cell]:
    """Cells whose id matches any ``fnmatch`` pattern (all cells when ``patterns`` is None)."""
    if not patterns:
        return cells
    return [c for c in cells if any(fnmatch.fnmatchcase(c.id, p) for p in patterns)]


def run_experiment(
    exp: Experiment, ctx: RunContext, *, resume: bool = True, progress: bool | None = None,
    cell_patterns: list[str] | None = None,
) -> ExperimentResult:
    """Run (or reuse) every cell of ``exp`` at ``ctx.scale``, then write its
    records, figures and report text. ``ctx.out_dir`` is ``OUT/<scale>``.

    ``progress=None`` shows the progress bar only when stderr is a terminal.
    ``cell_patterns`` (``fnmatch`` on cell ids) restricts the run, the records,
    figures and report to the matching cells; other finished cells stay on disk.
    """
    exp_dir = Path(ctx.out_dir) / exp.name
    cells = select_cells(_check_cells(exp, exp.cells(ctx.scale)), cell_patterns)
    result = ExperimentResult(exp)

    bar = tqdm(
        total=len(cells),
        desc=exp.name,
        unit="cell",
        file=sys.stderr,
        disable=None if progress is None else not progress,
    )
    with bar:
        for cell in cells:
            bar.set_postfix_str(cell.id, refresh=False)
            path = exp_dir / "cells" / f"{cell.id}.json"
            data = read_json_or_none(path) if resume else None
            problem = _reuse_problem(data, exp, cell, ctx) if resume else "no-resume"
            if problem is None:
                result.reused += 1
            else:
                if problem not in ("missing", "no-resume"):
                    tqdm.write(f"note: {exp.name}/{cell.id}: cell file {problem}; recomputing",
                               file=sys.stderr)
                data = _compute_cell(exp, cell, ctx, path)
                result.computed += 1
            result.compute_s += float(data.get("elapsed_s") or 0.0)
            for record in data["records"]:
                result.records.append({"experiment": exp.name, "cell": cell.id, **record})
            bar.update(1)

    write_records_csv(exp_dir / "records.csv", result.records, leading=RESERVED_COLUMNS)
    write_records_jsonl(exp_dir / "records.jsonl", result.records)

    result.null_counts = count_nulls(result.records)
    if result.null_counts:
        print(f"warning: {exp.name}: {_null_summary(result.null_counts)}", file=sys.stderr)

    plot_records = nulls_to_nan(result.records)
    if exp.plot is not None:
        fig_dir = Path(ctx.out_dir) / "figures"
        fig_dir.mkdir(parents=True, exist_ok=True)
        try:
            result.figures = [Path(p) for p in (exp.plot(plot_records, fig_dir) or [])]
        finally:
            import matplotlib.pyplot as plt

            plt.close("all")
        for fig in result.figures:
            if not fig.exists():
                print(f"warning: {exp.name}: plot returned missing file {fig}", file=sys.stderr)
    if exp.report is not None:
        result.report_text = exp.report(plot_records)
    return result


def _null_summary(counts: dict[str, int]) -> str:
    per_key = ", ".join(f"{k}: {n}" for k, n in counts.items())
    return f"{sum(counts.values())} NaN/inf value(s) stored as null ({per_key})"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ------------------------------------------------------------------ report
def write_report(path: Path, ctx: RunContext, results: list[ExperimentResult]) -> Path:
    """Write ``report.md`` atomically: header, then one section per experiment
    with its figures (paths relative to the report) and its report text."""
    path = Path(path)
    devices = jax_device_names()
    lines = [
        f"# jaxsg sweep report: {ctx.scale} scale",
        "",
        f"- date: {_now()}",
        f"- scale: `{ctx.scale}`, seed: {ctx.seed}",
        f"- jax {jax.__version__}, {len(devices)} device(s): {', '.join(devices)}",
        f"- git commit: {git_commit() or 'unknown'}",
        "",
    ]
    if not results:
        lines += ["No experiments were run.", ""]
    for res in results:
        exp = res.experiment
        lines += [
            f"## {exp.title}",
            "",
            (
                f"`{exp.name}` (scenario `{exp.scenario}`): {res.num_cells} cells "
                f"({res.computed} computed, {res.reused} reused), {len(res.records)} records, "
                f"{res.compute_s:.1f} s of cell compute. "
                f"Records: `{exp.name}/records.csv`."
            ),
            "",
        ]
        if res.null_counts:
            lines += [f"> **Warning:** {_null_summary(res.null_counts)}.", ""]
        for fig in res.figures:
            rel = Path(os.path.relpath(fig, path.parent)).as_posix()
            lines += [f"![{exp.name}: {fig.stem}]({rel})", ""]
        if res.report_text:
            lines += [res.report_text.rstrip(), ""]
    return atomic_write_text(path, "\n".join(lines))


# --------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sweeps.grid",
        description="Run jaxsg experiment grids (resumable) and write figures and a report.",
    )
    parser.add_argument("--scale", choices=SCALES, default="default",
                        help="grid size: smoke (seconds), default (minutes on a laptop CPU), paper")
    parser.add_argument("--experiment", action="append", metavar="NAME",
                        help="run this experiment (repeatable; default: every default experiment)")
    parser.add_argument("--out", type=Path, default=Path("results"), metavar="DIR",
                        help="output root (default: results)")
    parser.add_argument("--list", action="store_true",
                        help="list experiments with their number of cells at --scale, then exit")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                        help="reuse finished cells (default: on)")
    parser.add_argument("--seed", type=int, default=0, help="base seed given to every cell")
    parser.add_argument("--hang-restart-s", type=float, default=120.0, metavar="S",
                        help="restart the grid (resuming) when a cell uses < 1 s of CPU in S "
                        "seconds: a known jaxlib CPU hang; 0 disables (default: 120)")
    parser.add_argument("--cells", action="append", metavar="PATTERN",
                        help="only cells whose id matches this fnmatch pattern (repeatable, "
                        "comma-separated allowed), e.g. --cells 'marto,best_response'")
    return parser


def _print_listing(experiments: list[Experiment], scale: str) -> None:
    rows = [("name", "scenario", f"cells@{scale}", "default", "title")]
    for exp in experiments:
        n = len(exp.cells(scale))
        rows.append((exp.name, exp.scenario, str(n), "yes" if exp.default else "no", exp.title))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])


def main(argv: list[str] | None = None, hang_guard: bool | None = None) -> int:
    """CLI entry point; returns the exit status (argument errors raise
    ``SystemExit(2)`` via argparse, with the message on stderr).

    ``hang_guard`` (default: only when run as the command, ``argv is None``)
    starts the :class:`HangGuard`, which may re-execute this process's command line.
    """
    configure_cpu_runtime()  # the entry point owns the platform settings
    parser = build_parser()
    args = parser.parse_args(argv)

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

    global _GUARD
    if hang_guard is None:
        hang_guard = argv is None
    if hang_guard and args.hang_restart_s > 0 and _GUARD is None:
        _GUARD = HangGuard(args.hang_restart_s)
    ctx = RunContext(scale=args.scale, seed=args.seed, out_dir=scale_dir(args.out, args.scale))
    if not selected:
        print("warning: no experiments selected (none registered with default=True)",
              file=sys.stderr)
    patterns = None
    if args.cells:
        patterns = [p.strip() for arg in args.cells for p in arg.split(",") if p.strip()]
    results = []
    for exp in selected:
        res = run_experiment(exp, ctx, resume=args.resume, cell_patterns=patterns)
        print(f"{exp.name}: {res.num_cells} cells ({res.computed} computed, {res.reused} reused), "
              f"{len(res.records)} records -> {Path(ctx.out_dir) / exp.name}")
        results.append(res)
    report = write_report(Path(ctx.out_dir) / "report.md", ctx, results)
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
