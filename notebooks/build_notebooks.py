"""Write ``notebooks/<scenario>_results.ipynb``, one per scenario, from one template.

    python notebooks/build_notebooks.py

Every notebook finds the repository from its working directory (Jupyter starts
kernels in ``notebooks/``), reads the run directory ``$JAXSG_RESULTS`` or
``<repo>/results/<scale>/seed-0`` (paper, default, then smoke scale), loads every
``<experiment>/records.jsonl`` of its scenario with pandas and shows, per experiment,
the ``mean ± 95 % CI (n = seeds)`` table of ``sweeps.report.ci_table`` and an inline
figure (95 % bands of ``sweeps.report.band_plot``), plus the claims summary of
``report.md``. ``tests/test_notebooks.py`` executes them in a real kernel (nbclient)
on smoke-scale results and checks that this script reproduces them.
"""

from __future__ import annotations

import json
import pprint
from pathlib import Path

HERE = Path(__file__).resolve().parent

SCENARIOS = {
    "sgin": ("satellite-ground integrated network: throughput, queues, profit, privacy",
             {"sgin_fig8": "throughput_mbit"}),
    "dt_deploy": ("digital-twin deployment: system latency and reward per method",
                  {"dt_deploy_fig4_5": "latency_sum_s", "dt_deploy_fig7": "latency_sum_s",
                   "dt_deploy_curves": "eval_latency_sum_s"}),
    "spectrum": ("spectrum trading: price, revenue and reward", {}),
    "edge_assoc": ("edge association: system time cost, FL loss and accuracy", {}),
}


def _md(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text.strip().splitlines(True)}


def _code(text: str) -> dict:
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": text.strip().splitlines(True)}


SETUP = '''
import os
import sys
from pathlib import Path

SCENARIO = {scenario!r}
#: preferred metric per experiment (others: the first metric column of its records)
PRIMARY = {primary}


def find_repo(start: Path) -> Path | None:
    """The repository root above ``start`` (it holds pyproject.toml and sweeps/)."""
    for d in [start, *start.parents]:
        if (d / "pyproject.toml").exists() and (d / "sweeps").is_dir():
            return d
    return None


def find_results(repo: Path | None) -> Path:
    """$JAXSG_RESULTS (a run directory, or a results root holding <scale>/seed-0),
    else <repo>/results/<scale>/seed-0 for the first scale that exists."""
    env = os.environ.get("JAXSG_RESULTS")
    roots = [Path(env).expanduser()] if env else ([repo / "results"] if repo else [])
    for root in roots:
        if any(root.glob("*/records.jsonl")):
            return root
        for scale in ("paper", "default", "smoke"):
            if (root / scale / "seed-0").is_dir():
                return root / scale / "seed-0"
    raise FileNotFoundError(
        f"no sweep results under {{roots[0] if roots else 'results/'}}: run "
        f"`python -m sweeps.grid --scale smoke` in {{repo or 'the repository'}} or set "
        "JAXSG_RESULTS to a run directory (results/<scale>/seed-<seed>)")


REPO = find_repo(Path.cwd())
if REPO is not None and str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # this checkout's sweeps/ package
RESULTS = find_results(REPO)
print("results:", RESULTS)
'''

LOAD = '''
%matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from sweeps import report

META = {"experiment", "cell", "overrides", "scenario", "method", "series", "axis",
        "axis_value", "seed", "episode", "iteration", "episodes", "users"}
frames = {}
for path in sorted(RESULTS.glob(f"{SCENARIO}_*/records.jsonl")):
    frames[path.parent.name] = pd.read_json(path, lines=True, dtype=False)
print(f"{SCENARIO}: {len(frames)} experiment(s) with records:", ", ".join(frames) or "none")
for name, df in frames.items():
    print(f"  {name}: {len(df)} records, columns: {', '.join(df.columns)}")
'''

CLAIMS = '''
report_md = RESULTS / "report.md"
if report_md.exists():  # the claims summary table that heads report.md
    text = report_md.read_text(encoding="utf-8")
    start = text.find("## Claims summary")
    end = text.find("\\n## ", start + 1)
    claims = text[start:end if end > 0 else None]
    rows = [line for line in claims.splitlines()
            if line.startswith("|") and SCENARIO in line]
    head = [line for line in claims.splitlines() if line.startswith("|")][:2]
    display(Markdown("\\n".join(head + rows) if rows else f"No {SCENARIO} claims in report.md."))
'''

TABLES = '''
def metric_of(name: str, df: pd.DataFrame) -> str | None:
    if name in PRIMARY and PRIMARY[name] in df.columns:
        return PRIMARY[name]
    numeric = [c for c in df.columns
               if c not in META and pd.api.types.is_numeric_dtype(df[c])]
    return numeric[0] if numeric else None


def show(name: str, df: pd.DataFrame) -> None:
    metric = metric_of(name, df)
    if metric is None:
        display(Markdown(f"**{name}**: no numeric metric column"))
        return
    records = [{k: v for k, v in r.items() if not (isinstance(v, float) and v != v)}
               for r in df.to_dict("records")]
    records = [r for r in records if metric in r]
    series = "series" if "series" in df.columns else "method"
    x = next((c for c in ("axis_value", "iteration") if c in df.columns
              and df[c].nunique() > 1), None)
    display(Markdown(f"**{name}** — `{metric}`, mean ± 95 % CI over seeds\\n\\n"
                     + report.ci_table(records, metric, series_key=series, x_key=x)))
    fig, ax = plt.subplots(figsize=(6, 3.2))
    if x is not None:
        report.band_plot(ax, report.series_estimates(records, metric, series_key=series,
                                                     x_key=x))
        ax.set_xlabel(df["axis"].iloc[0] if x == "axis_value" and "axis" in df else x)
    else:
        names = list(dict.fromkeys(r[series] for r in records))
        ests = [report.stats.estimate(records, metric, **{series: s}) for s in names]
        ax.bar(range(len(names)), [e.mean for e in ests],
               yerr=[e.half_width if e.defined else 0.0 for e in ests], capsize=3)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(metric)
    ax.set_title(f"{name}: 95 % CI over seeds", fontsize=9)
    ax.grid(alpha=0.3)
    if x is not None:
        ax.legend(fontsize=7)
    fig.tight_layout()
    plt.show()


for name, df in frames.items():
    show(name, df)
'''


def notebook(scenario: str) -> dict:
    title, primary = SCENARIOS[scenario]
    cells = [
        _md(f"""
# {scenario}: sweep results

{title}.

Reads the tidy records that `python -m sweeps.grid` writes
(`results/<scale>/seed-<seed>/<experiment>/records.jsonl`): the run directory in
`$JAXSG_RESULTS`, else `results/<scale>/seed-0` of this repository (paper, default,
then smoke scale). Tables are `mean ± 95 % CI (n = seeds)` (`sweeps.report.ci_table`);
figures draw inline. Generated by `notebooks/build_notebooks.py`; edit that, not this.
"""),
        _code(SETUP.format(scenario=scenario, primary=pprint.pformat(primary, width=88))),
        _code(LOAD),
        _md("Claims of this scenario, as judged in `report.md` from the same records:"),
        _code(CLAIMS),
        _md("Per experiment: the CI table of its main metric and a figure (95 % bands "
            "over seeds along the swept axis, or bars with CI error bars)."),
        _code(TABLES),
    ]
    return {"cells": cells, "metadata": {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}


def render(scenario: str) -> str:
    nb = notebook(scenario)
    for i, cell in enumerate(nb["cells"]):
        cell["id"] = f"{scenario}-{i}"
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def main() -> None:
    for scenario in SCENARIOS:
        path = HERE / f"{scenario}_results.ipynb"
        path.write_text(render(scenario), encoding="utf-8")
        print(path)


if __name__ == "__main__":
    main()
