"""The one-command accelerator check, dry-run on the CPU (slow: four scenarios + training)."""

import json

import pytest

from sweeps import gpu_check


def test_batches_grow_by_four_up_to_the_max():
    assert gpu_check._batches(65536) == [1, 64, 256, 1024, 4096, 16384, 65536]
    assert gpu_check._batches(100) == [1, 64, 100]


@pytest.mark.slow
def test_quick_dry_run_writes_one_json(tmp_path):
    path = tmp_path / "gpu.json"
    rc = gpu_check.main(["--quick", "--json", str(path), "--experiment", ""])
    assert rc == 0
    doc = json.loads(path.read_text())
    assert set(doc["bench"]["scenarios"]) == {"sgin", "dt_deploy", "spectrum", "edge_assoc"}
    assert doc["bench"]["train"] and doc["bench"]["peak"]["peak_flops_per_s"] > 0
