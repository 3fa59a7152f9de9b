"""Every notebook runs top to bottom in a real Jupyter kernel (nbclient) on smoke-scale
sweep results produced here, started from ``notebooks/`` as Jupyter does, and draws its
figures inline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sweeps import grid

nbclient = pytest.importorskip("nbclient", reason="the 'dev'/'analysis' extra brings nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

NB_DIR = Path(__file__).parents[1] / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
SCENARIOS = ("sgin", "dt_deploy", "spectrum", "edge_assoc")
#: one cheap smoke experiment per scenario, heuristic cells only
SMOKE = {"sgin_fig8": "marto", "dt_deploy_fig7": "rd", "spectrum_fig10": "average_budget",
         "edge_assoc_fig5": "random"}


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    argv = ["--scale", "smoke", "--out", str(out), "--cells", ",".join(SMOKE.values())]
    for name in SMOKE:
        argv += ["--experiment", name]
    assert grid.main(argv) == 0
    return grid.run_dir(out, "smoke")  # OUT/smoke/seed-0


def test_one_notebook_per_scenario_and_generator_in_sync():
    import importlib.util

    assert {p.name for p in NOTEBOOKS} >= {f"{s}_results.ipynb" for s in SCENARIOS}
    spec = importlib.util.spec_from_file_location("build_notebooks",
                                                  NB_DIR / "build_notebooks.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    for s in SCENARIOS:  # the committed notebooks are what the generator writes
        assert (NB_DIR / f"{s}_results.ipynb").read_text() == build.render(s), s
    for path in NOTEBOOKS:
        source = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
        assert 'matplotlib.use("Agg")' not in source and "%matplotlib inline" in source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes_in_a_kernel(path, smoke_results, monkeypatch):
    monkeypatch.setenv("JAXSG_RESULTS", str(smoke_results))
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NB_DIR)}})
    client.execute()  # raises CellExecutionError on any failing cell
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    scenario = path.name.removesuffix("_results.ipynb")
    assert str(smoke_results) in text
    assert f"{scenario}: 1 experiment(s) with records" in text, text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, "no inline figure"
    tables = [o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})]
    assert any("±" in t and "(n = " in t for t in tables), tables


def test_notebook_without_results_names_where_to_look(tmp_path, monkeypatch):
    """Outside a checkout and without JAXSG_RESULTS the first code cell says what to do."""
    monkeypatch.setenv("JAXSG_RESULTS", str(tmp_path / "nothing-here"))
    nb = nbformat.read(NB_DIR / "dt_deploy_results.ipynb", as_version=4)
    nb.cells = nb.cells[:2]
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(NB_DIR)}})
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="JAXSG_RESULTS"):
        client.execute()
