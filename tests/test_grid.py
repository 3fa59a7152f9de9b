"""The sweep runner: resume, crash safety, device-count invariance, CLI, sharding.

A toy experiment defined here does a real (tiny) JAX computation through
``sweeps.sharding.run_batched``. Subprocess tests import this module to
register the same toy (``python -c`` with ``tests/`` on ``PYTHONPATH``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sweeps import grid
from sweeps.experiments import Cell, Experiment, RunContext, get_experiment, register_experiment
from sweeps.io import atomic_write_text, clean_record, read_json_or_none, to_python
from sweeps.sharding import batch_mesh, pad_leading_axis, run_batched, shard_leading_axis

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTS_DIR = Path(__file__).resolve().parent
TOY = "_toy"

# ------------------------------------------------------------------ toy experiment
#: (cell id, seed) of every toy cell computed in this process.
CALLS: list[tuple[str, int]] = []


def _toy_element(args):
    key, mu = args
    return {"value": jnp.sum(jax.random.normal(key, (16,))) + mu, "mu": mu}


def _beat_until(stop: threading.Event) -> None:
    while not stop.wait(0.1):
        grid.beat()


def make_toy(name: str = TOY, n_cells: int = 3, sleep: float = 0.0, batch: int = 5,
             nan_cell: int | None = None, beat: bool = False) -> Experiment:
    """``n_cells`` cells, each a batch of ``batch`` seeds (5: not a multiple of 4).
    ``sleep``: seconds each cell waits with ~0 CPU (calling ``grid.beat`` every
    0.1 s when ``beat``, like a cell whose device makes progress)."""

    def cells(scale: str) -> list[Cell]:
        n = 1 if scale == "smoke" else n_cells
        return [Cell(f"mu-{i}", {"index": i, "mu": float(i), "batch": batch, "sleep": sleep,
                                 "nan": i == nan_cell}) for i in range(n)]

    def run_cell(cell: Cell, ctx: RunContext) -> list[dict]:
        CALLS.append((cell.id, ctx.seed))
        if os.environ.get("JAXSG_TOY_LOG"):  # computations of every process, for tests
            with open(os.environ["JAXSG_TOY_LOG"], "a") as fh:
                fh.write(f"{name} {cell.id} {ctx.seed} {os.getpid()}\n")
        cfg = cell.config
        stop = threading.Event()
        if beat:  # a progress callback, beating while the cell runs
            threading.Thread(target=_beat_until, args=(stop,), daemon=True).start()
        try:
            time.sleep(cfg["sleep"])
            return _toy_records(cell, ctx)
        finally:
            stop.set()

    def _toy_records(cell: Cell, ctx: RunContext) -> list[dict]:
        cfg = cell.config
        key = jax.random.fold_in(jax.random.key(ctx.seed), cfg["index"])
        keys = jax.random.split(key, cfg["batch"])
        out = run_batched(_toy_element, (keys, np.full(cfg["batch"], cfg["mu"], np.float32)))
        assert out["value"].shape == (cfg["batch"],)
        return [
            {"replicate": np.int32(j), "mu": out["mu"][j], "value": out["value"][j],
             "ratio": float("nan") if cfg["nan"] and j == 0 else 1.0,
             "devices": jax.local_device_count()}
            for j in range(cfg["batch"])
        ]

    def plot(records: list[dict], fig_dir: Path) -> list[Path]:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot([r["mu"] for r in records], [r["value"] for r in records], "o")
        path = fig_dir / f"{name}_values.png"
        fig.savefig(path, dpi=50)
        return [path]

    def report(records: list[dict]) -> str:
        mean = np.mean([r["value"] for r in records])
        return f"Toy mean value: {mean:.3f} (claim: about mean(mu))."

    return Experiment(name=name, scenario="toy", title="Toy sums of normals", cells=cells,
                      run_cell=run_cell, plot=plot, report=report, default=False)


def register_toy(**kwargs) -> Experiment:
    return register_experiment(make_toy(**kwargs), replace=True)


def cell_files(out: Path, name: str = TOY, scale: str = "default",
               seed: int = 0) -> dict[str, Path]:
    return {p.stem: p for p in (grid.run_dir(out, scale, seed) / name / "cells").glob("*.json")}


def run_sub(out: Path, *, toy: dict | None = None, args: tuple = (), env_extra: dict | None = None,
            wait: bool = True, timeout: float = 120, hang_guard: bool = False):
    """Run main() in a fresh interpreter with the toy registered."""
    code = (
        "import sys, test_grid\n"
        f"test_grid.register_toy(**{toy or {}!r})\n"
        "from sweeps.grid import main\n"
        f"sys.exit(main(['--experiment', {TOY!r}, '--out', {str(out)!r}, *{list(args)!r}], "
        f"hang_guard={hang_guard!r}))\n"
    )
    env = dict(os.environ)
    env.update(JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(TESTS_DIR),
                                           env.get("PYTHONPATH", "")]))
    env.pop("XLA_FLAGS", None)
    env.update(env_extra or {})
    cmd = [sys.executable, "-c", code]
    if not wait:
        return subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, check=False, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def load_records(out: Path, scale: str = "default", seed: int = 0, name: str = TOY) -> list[dict]:
    path = grid.run_dir(out, scale, seed) / name / "records.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


# ----------------------------------------------------------------------------- tests
def test_run_writes_everything_and_rerun_reuses(tmp_path, capsys):
    register_toy(n_cells=3, nan_cell=1)
    CALLS.clear()
    assert grid.main(["--experiment", TOY, "--out", str(tmp_path)]) == 0
    assert sorted(CALLS) == [("mu-0", 0), ("mu-1", 0), ("mu-2", 0)]
    captured = capsys.readouterr()
    assert "report: " in captured.out
    assert "warning: _toy: 1 NaN/inf value(s) stored as null (ratio: 1)" in captured.err

    base = grid.run_dir(tmp_path, "default", 0)
    assert base == tmp_path / "default" / "seed-0"
    files = cell_files(tmp_path)
    assert sorted(files) == ["mu-0", "mu-1", "mu-2"]
    cell = json.loads(files["mu-1"].read_text())
    assert cell["experiment"] == TOY and cell["cell"] == "mu-1" and cell["scale"] == "default"
    assert cell["config"]["mu"] == 1.0 and cell["seed"] == 0 and cell["elapsed_s"] >= 0
    assert cell["jax_devices"] and len(cell["records"]) == 5 and cell["num_records"] == 5
    assert cell["format"] == 2 and len(cell["config_hash"]) == 64
    assert cell["code"] == grid.code_version() and cell["code"]["source_hash"]
    assert cell["records"][0]["ratio"] is None  # NaN kept as null, not dropped
    assert isinstance(cell["records"][0]["replicate"], int)

    records = load_records(tmp_path)
    assert len(records) == 15 and records[0]["experiment"] == TOY and records[0]["cell"] == "mu-0"
    csv_lines = (base / TOY / "records.csv").read_text().splitlines()
    assert csv_lines[0] == "experiment,cell,replicate,mu,value,ratio,devices"
    assert len(csv_lines) == 16 and ",,1" in csv_lines[6]  # the NaN: an empty field

    png = base / "figures" / f"{TOY}_values.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (base / "report.md").read_text()
    assert "scale: `default`" in report and "Toy sums of normals" in report
    assert f"![{TOY}: {TOY}_values](figures/{TOY}_values.png)" in report
    assert "Toy mean value" in report and "**Warning:**" in report

    stamps = {k: p.stat().st_mtime_ns for k, p in files.items()}
    CALLS.clear()
    assert grid.main(["--experiment", TOY, "--out", str(tmp_path)]) == 0
    assert CALLS == []  # every cell reused
    assert {k: p.stat().st_mtime_ns for k, p in cell_files(tmp_path).items()} == stamps
    assert load_records(tmp_path) == records

    # Another seed is another run directory; --no-resume recomputes everything.
    assert grid.main(["--experiment", TOY, "--out", str(tmp_path), "--seed", "1"]) == 0
    assert sorted(CALLS) == [("mu-0", 1), ("mu-1", 1), ("mu-2", 1)]
    assert {k: p.stat().st_mtime_ns for k, p in cell_files(tmp_path).items()} == stamps
    CALLS.clear()
    assert grid.main(["--experiment", TOY, "--out", str(tmp_path), "--seed", "1",
                      "--no-resume"]) == 0
    assert len(CALLS) == 3


def test_cells_filter_runs_and_reports_only_matching_cells(tmp_path):
    register_toy(n_cells=4)
    CALLS.clear()
    assert grid.main(["--experiment", TOY, "--out", str(tmp_path), "--cells", "mu-1,mu-3"]) == 0
    assert sorted(CALLS) == [("mu-1", 0), ("mu-3", 0)]
    assert sorted({r["cell"] for r in load_records(tmp_path)}) == ["mu-1", "mu-3"]
    CALLS.clear()  # a wider pattern computes only what is missing
    assert grid.main(["--experiment", TOY, "--out", str(tmp_path), "--cells", "mu-*"]) == 0
    assert sorted(CALLS) == [("mu-0", 0), ("mu-2", 0)]
    assert len(load_records(tmp_path)) == 4 * 5


def test_hang_guard_restarts_a_stalled_grid_and_reuses_finished_cells(tmp_path):
    """A cell that uses no CPU (sleep stands in for the jaxlib hang) triggers restarts."""
    res = run_sub(tmp_path, toy={"n_cells": 2, "sleep": 2.5},
                  args=("--hang-restart-s", "1"), hang_guard=True, timeout=240)
    assert res.returncode == 0, res.stderr
    assert "restarting the grid (1/3)" in res.stderr
    assert "restarting the grid (3/3)" in res.stderr and "still waiting" in res.stderr
    assert sorted(cell_files(tmp_path)) == ["mu-0", "mu-1"]
    assert len(load_records(tmp_path)) == 2 * 5


def test_hang_guard_leaves_a_cell_that_waits_with_heartbeats_alone(tmp_path):
    """~0 CPU for 2.5 s per cell (like a GPU-bound cell), but heartbeats: no restart."""
    res = run_sub(tmp_path, toy={"n_cells": 2, "sleep": 2.5, "beat": True},
                  args=("--hang-restart-s", "1"), hang_guard=True, timeout=240)
    assert res.returncode == 0, res.stderr
    assert "restarting" not in res.stderr and "still waiting" not in res.stderr
    assert len(load_records(tmp_path)) == 2 * 5


def test_hang_guard_decision():
    from sweeps.hang import is_stalled

    kw = dict(window_s=10.0, min_cpu_s=1.0)
    # a recent heartbeat: healthy on any backend, whatever the CPU does
    assert not is_stalled(silent_s=3, cpu_used_s=0, backend="cpu", instrumented=True, **kw)
    # CPU backend, silent: stalled only without CPU progress (the jaxlib freeze)
    assert is_stalled(silent_s=12, cpu_used_s=0.1, backend="cpu", instrumented=False, **kw)
    assert not is_stalled(silent_s=12, cpu_used_s=5, backend="cpu", instrumented=False, **kw)
    # accelerator: idle host CPU is normal; only an instrumented cell that went silent
    assert not is_stalled(silent_s=1e4, cpu_used_s=0, backend="gpu", instrumented=False, **kw)
    assert is_stalled(silent_s=12, cpu_used_s=0, backend="gpu", instrumented=True, **kw)


def test_hang_guard_watch_step_by_backend():
    """An uninstrumented cell idle on an accelerator is left alone; on CPU it is stalled;
    a heartbeat makes any cell healthy."""
    from sweeps.hang import HangGuard

    for backend, stalled in (("gpu", False), ("cpu", True)):
        guard = HangGuard(0, backend=backend)
        guard.window_s = 0.2
        guard.busy("_toy/x")
        time.sleep(0.35)
        assert guard._check() == ("_toy/x" if stalled else None), backend
        grid.beat()
        assert guard._check() is None
        guard.busy(None)
        assert guard._check() is None


def test_corrupt_cell_is_recomputed_with_a_note(tmp_path, capsys):
    register_toy(n_cells=3)
    assert grid.main(["--experiment", TOY, "--out", str(tmp_path), "--scale", "smoke"]) == 0
    (path,) = cell_files(tmp_path, scale="smoke").values()
    good = json.loads(path.read_text())
    path.write_text(path.read_text()[:40])  # a partial write
    assert read_json_or_none(path) is None
    CALLS.clear()
    capsys.readouterr()
    assert grid.main(["--experiment", TOY, "--out", str(tmp_path), "--scale", "smoke"]) == 0
    assert CALLS == [("mu-0", 0)]
    assert ("note: _toy/mu-0: cell file corrupt or truncated (not valid JSON); recomputing"
            in capsys.readouterr().err)
    again = json.loads(path.read_text())
    assert again["records"] == good["records"]  # deterministic given config and seed


def test_kill_loses_at_most_the_cell_in_flight(tmp_path):
    toy = {"n_cells": 8, "sleep": 0.4}
    proc = run_sub(tmp_path, toy=toy, wait=False)
    try:
        deadline = time.monotonic() + 90
        while len(cell_files(tmp_path)) < 2:
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "no cell finished in time"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    done = cell_files(tmp_path)
    assert 2 <= len(done) < 8
    for path in done.values():
        assert read_json_or_none(path) is not None, f"partial cell file {path}"
    stamps = {k: (p.stat().st_ino, p.stat().st_mtime_ns) for k, p in done.items()}

    res = run_sub(tmp_path, toy=toy)
    assert res.returncode == 0, res.stderr
    after = cell_files(tmp_path)
    assert sorted(after) == [f"mu-{i}" for i in range(8)]
    assert {k: (after[k].stat().st_ino, after[k].stat().st_mtime_ns) for k in done} == stamps
    assert f"8 cells ({8 - len(done)} computed, {len(done)} reused)" in res.stdout
    assert len(load_records(tmp_path)) == 8 * 5


def test_results_do_not_depend_on_device_count(tmp_path):
    out1, out4 = tmp_path / "one", tmp_path / "four"
    procs = [
        run_sub(out1, toy={"n_cells": 3}, wait=False),
        run_sub(out4, toy={"n_cells": 3}, wait=False,
                env_extra={"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}),
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    for out, ndev in ((out1, 1), (out4, 4)):
        for path in cell_files(out).values():
            assert len(json.loads(path.read_text())["jax_devices"]) == ndev
    r1, r4 = load_records(out1), load_records(out4)
    assert [r["devices"] for r in r4] == [4] * 15 and [r["devices"] for r in r1] == [1] * 15
    assert [(r["cell"], r["replicate"]) for r in r1] == [(r["cell"], r["replicate"]) for r in r4]
    np.testing.assert_allclose([r["value"] for r in r1], [r["value"] for r in r4], rtol=1e-6)
    assert len({r["value"] for r in r1}) == 15  # the padding did not leak duplicates


def test_list_and_unknown_experiment(capsys):
    register_toy(n_cells=7)
    assert grid.main(["--list", "--experiment", TOY]) == 0
    out = capsys.readouterr().out
    assert "cells@default" in out
    (line,) = [ln for ln in out.splitlines() if ln.split()[:1] == [TOY]]
    assert line.split()[:4] == [TOY, "toy", "7", "no"] and "Toy sums of normals" in line
    assert grid.main(["--list", "--scale", "smoke"]) == 0
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if ln.split()[:1] == [TOY]]
    assert line.split()[2] == "1"

    with pytest.raises(SystemExit) as exc:
        grid.main(["--experiment", "no_such_thing"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown experiment 'no_such_thing'" in err and TOY in err
    with pytest.raises(KeyError, match="known experiments"):
        get_experiment("no_such_thing")


def test_unknown_experiment_cli_exits_2_without_traceback(tmp_path):
    res = run_sub(tmp_path, args=("--experiment", "nope"))
    assert res.returncode == 2
    assert "unknown experiment 'nope'" in res.stderr and TOY in res.stderr
    assert "Traceback" not in res.stderr


def test_registry_validation():
    with pytest.raises(ValueError, match="filesystem-safe"):
        Cell("a/b", {})
    with pytest.raises(TypeError, match="JSON"):
        Cell("ok", {"x": object()})
    exp = make_toy(name="_toy_dup")
    register_experiment(exp)
    register_experiment(exp)  # the same object again is fine
    with pytest.raises(ValueError, match="already registered"):
        register_experiment(make_toy(name="_toy_dup"))


def test_missing_experiment_module_is_skipped_but_broken_one_raises(tmp_path, monkeypatch):
    import sweeps.experiments as registry

    pkg = tmp_path / "_sweeps_broken_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "broken.py").write_text("import _definitely_not_a_module_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_modules_loaded", False)
    monkeypatch.setattr(registry, "EXPERIMENT_MODULES", ["sweeps.experiments._not_written_yet"])
    registry.load_experiment_modules()  # silently skipped
    monkeypatch.setattr(registry, "_modules_loaded", False)
    monkeypatch.setattr(registry, "EXPERIMENT_MODULES", ["_sweeps_broken_pkg.broken"])
    with pytest.raises(ModuleNotFoundError, match="_definitely_not_a_module_xyz"):
        registry.load_experiment_modules()


def test_records_are_converted_and_checked():
    assert to_python(np.float32(0.5)) == 0.5 and type(to_python(np.float32(0.5))) is float
    assert type(to_python(jnp.int32(3))) is int and type(to_python(np.bool_(True))) is bool
    assert to_python(jnp.asarray(2.0)) == 2.0
    with pytest.raises(TypeError):
        to_python(np.zeros(2))
    assert clean_record({"a": np.nan, "b": jnp.inf, "c": "x"}) == {"a": None, "b": None, "c": "x"}
    with pytest.raises(TypeError, match="'v'"):
        clean_record({"v": [1, 2]})


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "f.json"
    atomic_write_text(path, '{"a": 1}')
    atomic_write_text(path, '{"a": 2}')
    assert read_json_or_none(path) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["f.json"]  # no temp files left
    assert read_json_or_none(tmp_path / "missing.json") is None


def test_pad_leading_axis_and_run_batched_unpads():
    tree = {"a": np.arange(5), "b": jnp.arange(10.0).reshape(5, 2)}
    padded, n = pad_leading_axis(tree, 4)
    assert n == 5 and padded["a"].tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    assert padded["b"].shape == (8, 2) and np.all(np.asarray(padded["b"])[5:] == [8.0, 9.0])
    same, _ = pad_leading_axis(tree, 5)
    assert same["a"] is tree["a"]
    with pytest.raises(ValueError, match="disagree"):
        pad_leading_axis({"a": np.zeros(2), "b": np.zeros(3)}, 2)

    mesh = batch_mesh()
    sharded, n = shard_leading_axis(tree, mesh)
    assert n == 5 and sharded["a"].shape[0] % mesh.size == 0
    out = run_batched(lambda x: x["a"] * 2 + x["b"].sum(), tree)
    assert isinstance(out, np.ndarray) and out.tolist() == [1, 7, 13, 19, 25]


SHARDING_CHECK = """
import jax, numpy as np
from jax.sharding import PartitionSpec as P
from sweeps.sharding import batch_mesh, shard_leading_axis, run_batched
assert jax.local_device_count() == 4
mesh = batch_mesh()
x = np.arange(10.0)
sharded, n = shard_leading_axis(x, mesh)
assert n == 10 and sharded.shape == (12,), sharded.shape
assert len(sharded.sharding.device_set) == 4 and sharded.sharding.spec == P("batch")
assert np.asarray(sharded)[10:].tolist() == [9.0, 9.0]
keys = jax.random.split(jax.random.key(0), 7)
out = run_batched(lambda k: jax.random.uniform(k, (3,)), keys)
ref = jax.vmap(lambda k: jax.random.uniform(k, (3,)))(keys)
assert out.shape == (7, 3)
np.testing.assert_allclose(out, ref, rtol=1e-6)
print("ok")
"""


def test_run_batched_on_four_devices():
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=4",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", SHARDING_CHECK], cwd=REPO_ROOT, env=env,
                         check=False, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
