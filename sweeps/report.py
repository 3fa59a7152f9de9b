"""Report helpers of the evaluation protocol (``specs/evaluation.md`` §3-5).

* :class:`Claim` — one row of the claims summary table (scenario · figure · claim ·
  verdict · our numbers with CIs · the paper's numbers); experiments return them
  from their ``claims(records)`` function.
* :func:`ci_table` — a Markdown table whose compared cells are ``mean ± CI (n = …)``.
* :func:`band_plot` / :func:`save_figure` — mean lines with shaded labelled 95 %
  bands, markers per series and small x offsets where series coincide; every
  figure is written as PNG and PDF.
* :func:`write_report` — ``report.md``: header, the claims summary table first,
  then one section per experiment (same signature as ``sweeps.grid.write_report``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sweeps import stats
from sweeps.stats import Verdict

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
BAND_NOTE = "shaded: 95 % CI of the mean over seeds (Student t)"


@dataclass(frozen=True)
class Claim:
    """One paper claim and its verdict on this run's records."""

    scenario: str
    figure: str
    claim: str
    verdict: Verdict
    paper: str = "–"

    def row(self) -> str:
        cells = (self.scenario, self.figure, self.claim, f"**{self.verdict.label}**",
                 self.verdict.evidence or "–", self.paper)
        return "| " + " | ".join(_md(c) for c in cells) + " |"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def summary_table(claims: Sequence[Claim]) -> str:
    lines = ["| scenario | figure | claim | verdict | our numbers (mean ± 95 % CI) | paper |",
             "|---|---|---|---|---|---|"]
    lines += [c.row() for c in claims]
    return "\n".join(lines)


def verdict_lines(claims: Sequence[Claim]) -> str:
    return "\n".join(f"- **{c.figure}: {c.claim}** — {c.verdict.text()}" for c in claims)


# ------------------------------------------------------------------ tables
def ci_table(records: list[dict], metric: str, *, series_key: str, x_key: str | None,
             series_label: Callable[[object], str] = str, x_label: str = "",
             x_fmt: Callable[[float], str] = lambda x: f"{x:g}", digits: int = 4) -> str:
    """Markdown table: one row per series, one column per x value (or one column when
    ``x_key`` is None); cells ``mean ± CI (n = seeds)`` of ``metric``."""
    series = list(dict.fromkeys(r[series_key] for r in records))
    xs = sorted({r[x_key] for r in records}) if x_key else [None]
    head = ([f"{series_key} \\ {x_label}" if x_label else series_key]
            + ([x_fmt(x) for x in xs] if x_key else [f"`{metric}`"]))
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in series:
        cells = [series_label(s)]
        for x in xs:
            where = {series_key: s} if x is None else {series_key: s, x_key: x}
            cells.append(stats.estimate(records, metric, **where).fmt(digits))
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    return "\n".join(lines)


def series_estimates(records: list[dict], metric: str, *, series_key: str,
                     x_key: str) -> dict:
    """{series: (xs, [Estimate per x])} over seeds."""
    out = {}
    for s in dict.fromkeys(r[series_key] for r in records):
        rows = [r for r in records if r[series_key] == s]
        xs = sorted({r[x_key] for r in rows})
        out[s] = (np.asarray(xs, float),
                  [stats.estimate(rows, metric, **{x_key: x}) for x in xs])
    return out


# ------------------------------------------------------------------ figures
def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def band_plot(ax, curves: dict, *, label: Callable[[object], str] = str,
              x_scale: float = 1.0, offset_frac: float = 0.0, log_x: bool = False,
              markevery: int | None = None) -> None:
    """Plot ``curves`` ({series: (xs, [Estimate])}) as mean lines with shaded 95 % bands.

    Series get distinct markers; ``offset_frac`` shifts series i by
    ``(i - (k-1)/2) * offset_frac`` of the x spacing (multiplicative on a log axis)
    so coinciding series stay visible.
    """
    k = len(curves)
    for i, (s, (xs, ests)) in enumerate(curves.items()):
        x = np.asarray(xs, float) * x_scale
        if offset_frac and len(x) > 1:
            shift = (i - (k - 1) / 2) * offset_frac
            if log_x:
                x = x * np.exp(shift * np.log(x[-1] / x[0]) / (len(x) - 1))
            else:
                x = x + shift * (x[-1] - x[0]) / (len(x) - 1)
        mean = np.array([e.mean for e in ests])
        low = np.array([e.low if e.defined else np.nan for e in ests])
        high = np.array([e.high if e.defined else np.nan for e in ests])
        line, = ax.plot(x, mean, marker=MARKERS[i % len(MARKERS)], ms=4, lw=1.3,
                        markevery=markevery, label=label(s))
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.18, lw=0)
    if log_x:
        ax.set_xscale("log")


def save_figure(fig, fig_dir: Path, name: str) -> list[Path]:
    """Save ``fig`` as ``<name>.png`` and ``<name>.pdf`` in ``fig_dir``; close it."""
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths = [fig_dir / f"{name}.png", fig_dir / f"{name}.pdf"]
    fig.savefig(paths[0], dpi=120)
    fig.savefig(paths[1])
    plt().close(fig)
    return paths


def line_figure(name: str, curves: dict, *, title: str, xlabel: str, ylabel: str,
                fig_dir: Path, label: Callable[[object], str] = str, x_scale: float = 1.0,
                log_x: bool = False, log_y: bool = False, offset_frac: float = 0.04,
                hlines: Iterable[tuple[str, object]] = ()) -> list[Path]:
    """One panel: banded series (+ optional horizontal reference lines with their band)."""
    pyplot = plt()
    fig, ax = pyplot.subplots(figsize=(5.8, 3.9))
    band_plot(ax, curves, label=label, x_scale=x_scale, offset_frac=offset_frac, log_x=log_x)
    for i, (text, est) in enumerate(hlines):
        line = ax.axhline(est.mean, ls="--", lw=1, color=f"C{(len(curves) + i) % 10}",
                          label=text)
        if est.defined:
            ax.axhspan(est.low, est.high, color=line.get_color(), alpha=0.12, lw=0)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title=BAND_NOTE, title_fontsize=6)
    fig.tight_layout()
    return save_figure(fig, fig_dir, name)


# ------------------------------------------------------------------ report.md
def collect_claims(results) -> dict[str, list[Claim]]:
    """{experiment name: its claims} for every result whose experiment has ``claims``."""
    from sweeps.io import nulls_to_nan

    out: dict[str, list[Claim]] = {}
    for res in results:
        fn = getattr(res.experiment, "claims", None)
        if fn is not None:
            out[res.experiment.name] = list(fn(nulls_to_nan(res.records)))
    return out


def write_report(path: Path, ctx, results) -> Path:
    """``report.md``: header, the claims summary table, then one section per experiment
    with its figures (PNG linked, PDF beside it) and report text."""
    import jax

    from sweeps.grid import _now, _null_summary, code_version, describe_code, jax_device_names
    from sweeps.io import atomic_write_text

    path = Path(path)
    devices = jax_device_names()
    code = code_version()
    results = [r for r in results if r.records]
    by_exp = collect_claims(results)
    claims = [c for cs in by_exp.values() for c in cs]
    lines = [
        f"# jaxsg sweep report: {ctx.scale} scale",
        "",
        "## Claims summary",
        "",
        "Every paper claim judged on this run's records (specs/evaluation.md §4): "
        "*reproduced* / *not reproduced* by a paired 95 % CI over seeds, *formula check* "
        "where the claim holds for any policy by the model's arithmetic, *not run at this "
        "scale* where the claimed method was not run.",
        "",
        summary_table(claims) if claims else "No claims were evaluated.",
        "",
        "## Run",
        "",
        f"- date: {_now()}",
        f"- scale: `{ctx.scale}`, seed: {ctx.seed}",
        f"- jax {jax.__version__}, {len(devices)} device(s): {', '.join(devices)}",
        f"- git commit: {code['commit'] or 'unknown'}"
        f"{' (dirty: uncommitted changes)' if code['dirty'] else ''}, "
        f"source hash {code['source_hash']}",
        "",
    ]
    if not results:
        lines += ["No experiments were run.", ""]
    for res in results:
        exp = res.experiment
        missing = list(getattr(res, "missing", []))
        stale = list(getattr(res, "stale_code", []))
        total = res.num_cells + len(missing)
        reused = res.reused + getattr(res, "from_disk", 0)
        lines += [
            f"## {exp.title}", "",
            (f"`{exp.name}` (scenario `{exp.scenario}`): {res.num_cells} of {total} cells "
             f"({res.computed} computed, {reused} reused), {len(res.records)} records, "
             f"{res.compute_s:.1f} s of cell compute. Records: `{exp.name}/records.csv`."),
            "",
        ]
        if missing:
            lines += [f"> **Incomplete:** {len(missing)} cell(s) not computed: "
                      f"{', '.join(missing[:10])}{', ...' if len(missing) > 10 else ''}.", ""]
        if stale:
            lines += [f"> **Stale:** {len(stale)} cell(s) were computed by other code "
                      f"than {describe_code(code)}: {', '.join(stale[:10])}"
                      f"{', ...' if len(stale) > 10 else ''}.", ""]
        if res.null_counts:
            lines += [f"> **Warning:** {_null_summary(res.null_counts)}.", ""]
        for fig in res.figures:
            if Path(fig).suffix == ".pdf":
                continue
            rel = Path(os.path.relpath(fig, path.parent)).as_posix()
            lines += [f"![{exp.name}: {Path(fig).stem}]({rel}) "
                      f"([PDF]({Path(rel).with_suffix('.pdf').as_posix()}))", ""]
        if res.report_text:
            lines += [res.report_text.rstrip(), ""]
        own = by_exp.get(exp.name, [])
        if own:
            lines += ["**Verdicts:**", "", verdict_lines(own), ""]
    return atomic_write_text(path, "\n".join(lines))

