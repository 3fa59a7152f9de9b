"""Results that cannot silently go stale or vanish (issue 15 item 2) and
multi-host sharding (issue 14 item 5), on the toy experiment of test_grid."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import pytest
from test_grid import CALLS, TOY, cell_files, load_records, register_toy, run_sub

from sweeps import grid
from sweeps.io import DirLock, atomic_write_json

TOY_B = "_toy_b"


def run(out: Path, *args: str, name: str = TOY) -> int:
    return grid.main(["--experiment", name, "--out", str(out), *args])


def note_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("note: ")]


@pytest.fixture
def toy(tmp_path, capsys):
    """Three finished toy cells; CALLS and captured output cleared."""
    register_toy(n_cells=3)
    assert run(tmp_path) == 0
    CALLS.clear()
    capsys.readouterr()
    return tmp_path


def edit_cell(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    atomic_write_json(path, data)


@pytest.mark.parametrize("edit, reason", [
    (lambda d: d["records"][0].update(value=d["records"][0]["value"] * 1000),
     "edited (its records do not match their hash)"),
    (lambda d: d["config"].update(mu=1000.0), "edited (its config does not match its config hash)"),
    (lambda d: d.update(records=[], num_records=0), "empty record list"),
    (lambda d: d["records"].pop(), "record count mismatch (file says 5, holds 4)"),
    (lambda d: d.pop("format"), "written by an older runner"),
])
def test_an_edited_cell_is_recomputed_with_a_note(toy, capsys, edit, reason):
    path = cell_files(toy)["mu-1"]
    good = json.loads(path.read_text())
    edit_cell(path, edit)
    assert run(toy) == 0
    assert CALLS == [("mu-1", 0)]
    (note,) = note_lines(capsys.readouterr().err)
    assert note.startswith(f"note: {TOY}/mu-1: cell file {reason}") and "recomputing" in note
    assert json.loads(path.read_text())["records"] == good["records"]
    assert len(load_records(toy)) == 15


def test_a_changed_cell_config_is_recomputed_with_a_note(toy, capsys):
    register_toy(n_cells=3, batch=4)  # every cell's config changes
    assert run(toy) == 0
    assert sorted(CALLS) == [("mu-0", 0), ("mu-1", 0), ("mu-2", 0)]
    notes = note_lines(capsys.readouterr().err)
    assert len(notes) == 3 and all("config changed (config)" in n for n in notes)
    assert len(load_records(toy)) == 12


def test_a_code_change_is_recomputed_with_a_note(toy, capsys, monkeypatch):
    now = grid.code_version()
    monkeypatch.setattr(grid, "_CODE_VERSION", {**now, "source_hash": "0123456789abcdef"})
    assert run(toy, "--cells", "mu-0") == 0
    assert CALLS == [("mu-0", 0)]
    err = capsys.readouterr().err
    (note,) = note_lines(err)
    assert "cell file code changed (cell: " in note and f"sources {now['source_hash']}" in note
    assert "now: " in note and "sources 0123456789abcdef" in note
    # the two cells not selected stay in the records, flagged as stale in the report
    assert len(load_records(toy)) == 15
    assert "2 reported cell(s) were computed by other code (mu-1, mu-2)" in err
    report = (grid.run_dir(toy, "default") / "report.md").read_text()
    assert "**Stale:** 2 cell(s)" in report
    CALLS.clear()
    assert run(toy) == 0
    assert sorted(CALLS) == [("mu-1", 0), ("mu-2", 0)]


def test_source_hash_follows_the_package_sources(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "a.py").write_text("x = 1\n")
    monkeypatch.setattr(grid, "_package_dirs", lambda: [("pkg", pkg)])
    first = grid.source_hash()
    assert grid.source_hash() == first and len(first) == 16
    (pkg / "a.py").write_text("x = 2\n")
    assert grid.source_hash() != first


def test_report_header_has_commit_dirty_flag_and_source_hash(toy):
    code = grid.code_version()
    report = (grid.run_dir(toy, "default") / "report.md").read_text()
    line = next(ln for ln in report.splitlines() if ln.startswith("- git commit: "))
    assert f"source hash {code['source_hash']}" in line
    assert ("(dirty: uncommitted changes)" in line) == bool(code["dirty"])


def test_seed_1_leaves_seed_0_results_intact(toy):
    seed0 = grid.run_dir(toy, "default", 0)
    before = {p: p.read_bytes() for p in seed0.rglob("*") if p.is_file() and p.name != ".grid.lock"}
    assert run(toy, "--seed", "1") == 0
    assert sorted(CALLS) == [("mu-0", 1), ("mu-1", 1), ("mu-2", 1)]
    after = {p: p.read_bytes() for p in seed0.rglob("*") if p.is_file() and p.name != ".grid.lock"}
    assert after == before
    assert len(load_records(toy, seed=1)) == 15 and load_records(toy, seed=1) != load_records(toy)
    assert "seed: 1" in (grid.run_dir(toy, "default", 1) / "report.md").read_text()


def test_subset_runs_merge_into_records_figures_and_report(tmp_path):
    register_toy(n_cells=3)
    register_toy(name=TOY_B, n_cells=2)
    assert grid.main(["--experiment", TOY, "--experiment", TOY_B, "--out", str(tmp_path)]) == 0
    base = grid.run_dir(tmp_path, "default")
    records_a, records_b = load_records(tmp_path), load_records(tmp_path, name=TOY_B)
    report = (base / "report.md").read_text()
    assert report.count("## Toy sums of normals") == 2
    CALLS.clear()

    # --experiment B alone: A keeps its records, figure and report section
    assert run(tmp_path, "--no-resume", name=TOY_B) == 0
    assert sorted(CALLS) == [("mu-0", 0), ("mu-1", 0)]
    assert load_records(tmp_path) == records_a
    assert load_records(tmp_path, name=TOY_B) == records_b  # deterministic recompute
    report = (base / "report.md").read_text()
    assert f"`{TOY}` (scenario `toy`): 3 of 3 cells" in report
    assert f"`{TOY_B}` (scenario `toy`): 2 of 2 cells" in report
    assert (base / "figures" / f"{TOY}_values.png").exists()

    # --cells subset of A: the other cells of A stay in A's records
    CALLS.clear()
    assert run(tmp_path, "--cells", "mu-2", "--no-resume") == 0
    assert CALLS == [("mu-2", 0)]
    assert load_records(tmp_path) == records_a
    assert f"`{TOY}` (scenario `toy`): 3 of 3 cells (1 computed, 2 reused)" in (
        base / "report.md").read_text()
    assert not list((base / "figures").glob(".*"))  # no private plot directories left


def test_empty_cells_match_is_an_error_and_touches_nothing(toy, capsys):
    records = grid.run_dir(toy, "default") / TOY / "records.csv"
    before = records.read_bytes()
    with pytest.raises(SystemExit) as exc:
        run(toy, "--cells", "mu-1,nope*")
    assert exc.value.code == 2
    assert "--cells pattern(s) ['nope*'] match no cell of _toy" in capsys.readouterr().err
    assert CALLS == [] and records.read_bytes() == before


def test_negative_seed_and_bad_shard_are_errors(tmp_path, capsys):
    register_toy(n_cells=1)
    CALLS.clear()
    for args, msg in ((("--seed", "-1"), "--seed must be >= 0"),
                      (("--shard", "2/2"), "0 <= I < N"), (("--shard", "x"), "I/N"),
                      (("--shard", "0/2", "--report-only"), "takes no --shard")):
        with pytest.raises(SystemExit) as exc:
            run(tmp_path, *args)
        assert exc.value.code == 2 and msg in capsys.readouterr().err
    assert CALLS == [] and not (tmp_path / "default").exists()


def test_unwritable_out_fails_before_any_compute(tmp_path, capsys):
    register_toy(n_cells=2)
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    CALLS.clear()
    with pytest.raises(SystemExit) as exc:
        run(blocker / "results")
    assert exc.value.code == 2
    assert "is not writable" in capsys.readouterr().err and CALLS == []
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        with pytest.raises(SystemExit):
            run(ro)
        assert CALLS == []


def test_a_locked_directory_is_refused_with_a_message(toy, capsys):
    lock = DirLock(grid.run_dir(toy, "default") / grid.LOCK_NAME).acquire()
    try:
        assert run(toy, "--lock-wait-s", "0") == 3
    finally:
        lock.release()
    err = capsys.readouterr().err
    assert "is in use by pid " in err and "not running" in err and CALLS == []
    assert run(toy, "--lock-wait-s", "0") == 0  # released


def test_two_concurrent_runs_lose_and_duplicate_nothing(tmp_path):
    """Both runs start while the directory is locked, so both must wait; then they
    race for it: one computes every cell, the other reuses them."""
    log, out = tmp_path / "computed.log", tmp_path / "out"
    toy = {"n_cells": 4, "sleep": 0.3}
    held = DirLock(grid.run_dir(out, "default") / grid.LOCK_NAME).acquire()
    try:
        procs = [run_sub(out, toy=toy, wait=False, env_extra={"JAXSG_TOY_LOG": str(log)})
                 for _ in range(2)]
        for proc in procs:  # each one is waiting for the lock
            line = proc.stderr.readline()
            while re.match(r"[IWEF]\d{4} ", line):  # XLA's own log lines (e.g. a cache hit)
                line = proc.stderr.readline()
            assert "is in use by pid " in line and "waiting" in line, line
    finally:
        held.release()
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    computed = [ln.split()[1] for ln in log.read_text().splitlines()]
    assert sorted(computed) == [f"mu-{i}" for i in range(4)]  # each cell exactly once
    records = load_records(out)
    assert len(records) == 20 and len({(r["cell"], r["replicate"]) for r in records}) == 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("mode", ["shard", "distributed"])
def test_two_shards_then_report_only_equal_one_process(tmp_path, mode):
    toy = {"n_cells": 5}
    log = tmp_path / "computed.log"
    register_toy(**toy)
    assert run(tmp_path / "single") == 0
    if mode == "shard":
        argsets = [("--shard", f"{i}/2") for i in range(2)]
    else:
        port = _free_port()
        argsets = [("--distributed", "--coordinator", f"localhost:{port}", "--num-processes", "2",
                    "--process-id", str(i)) for i in range(2)]
    procs = [run_sub(tmp_path / "multi", toy=toy, args=a, wait=False,
                     env_extra={"JAXSG_TOY_LOG": str(log)}) for a in argsets]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    base = grid.run_dir(tmp_path / "multi", "default")
    assert not (base / TOY / "records.csv").exists() and not (base / "report.md").exists()
    by_pid: dict[str, list[str]] = {}
    for line in log.read_text().splitlines():
        _, cell, _, pid = line.split()
        by_pid.setdefault(pid, []).append(cell)
    assert sorted(sorted(v) for v in by_pid.values()) == [["mu-0", "mu-2", "mu-4"],
                                                          ["mu-1", "mu-3"]]
    done = run_sub(tmp_path / "multi", toy=toy, args=("--report-only",))
    assert done.returncode == 0, done.stderr
    assert len(log.read_text().splitlines()) == 5  # report-only computed nothing
    assert load_records(tmp_path / "multi") == load_records(tmp_path / "single")
    assert "5 of 5 cells" in (base / "report.md").read_text()


def test_report_only_flags_missing_cells(tmp_path, capsys):
    register_toy(n_cells=4)
    CALLS.clear()
    assert run(tmp_path, "--shard", "0/2") == 0
    assert sorted(CALLS) == [("mu-0", 0), ("mu-2", 0)]
    assert "run the same command with --report-only" in capsys.readouterr().out
    CALLS.clear()
    assert run(tmp_path, "--report-only") == 0
    assert CALLS == []
    assert "warning: _toy/mu-1: no usable cell file" in capsys.readouterr().err
    report = (grid.run_dir(tmp_path, "default") / "report.md").read_text()
    assert "2 of 4 cells" in report
    assert "**Incomplete:** 2 cell(s) not computed: mu-1, mu-3" in report
