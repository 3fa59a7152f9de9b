"""Every notebook runs top to bottom on smoke-scale sweep results (no Jupyter needed)."""

import json
from pathlib import Path

import pytest

from sweeps import grid

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    assert grid.main(["--scale", "smoke", "--experiment", "sgin_fig8", "--out", str(out)]) == 0
    return grid.run_dir(out, "smoke")  # OUT/smoke/seed-0


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, smoke_results, monkeypatch):
    assert NOTEBOOKS, "no notebooks found"
    monkeypatch.setenv("JAXSG_RESULTS", str(smoke_results))
    namespace = {"__name__": "__main__"}
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"{path.name}", "exec"), namespace)
