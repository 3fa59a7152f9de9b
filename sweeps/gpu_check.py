"""``python -m sweeps.gpu_check``: the one-command accelerator benchmark.

Runs, on whatever device JAX sees first (meant for a GPU the moment one is
available; it fits in a few minutes of device time):

1. ``sweeps.bench`` over all four scenarios with the measured device peaks and
   the roofline fraction, at batches up to ``--max-batch`` (default 65,536
   episodes), plus the training-throughput section (sgin learners, 1/64/256
   vmapped seeds);
2. one paper-scale learned experiment through ``sweeps.grid`` (default
   ``sgin_learned_vs_heuristics``), under a wall-clock limit, timing it;

and writes one JSON document (``--json``, default ``results/gpu_check.json``)
with both parts, the device, and every command's exit status. Nothing is
asserted about speed: the numbers go in the README by hand.

    python -m sweeps.gpu_check                          # the whole check
    python -m sweeps.gpu_check --quick                  # seconds: tiny batches (a CPU dry run)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sweeps.platform import configure_cpu_runtime


def _batches(max_batch: int) -> list[int]:
    out, b = [1], 64
    while b <= max_batch:
        out.append(b)
        b *= 4
    if out[-1] != max_batch:
        out.append(max_batch)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sweeps.gpu_check",
                                description=__doc__.split("\n")[0])
    p.add_argument("--json", default="results/gpu_check.json", help="output JSON path")
    p.add_argument("--max-batch", type=int, default=65536, help="largest bench batch")
    p.add_argument("--experiment", default="sgin_learned_vs_heuristics",
                   help="the paper-scale learned experiment to time ('' skips it)")
    p.add_argument("--experiment-timeout-s", type=float, default=300.0,
                   help="wall-clock limit of the experiment (default 300 s)")
    p.add_argument("--quick", action="store_true",
                   help="tiny batches, fast compile, smoke-scale experiment: a dry run")
    return p


def main(argv: list[str] | None = None) -> int:
    configure_cpu_runtime()
    args = build_parser().parse_args(argv)
    from sweeps import bench  # after the platform settings

    out_path = Path(args.json)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    doc: dict = {"started_unix": time.time()}

    bench_json = out_path.with_name(out_path.stem + "_bench.json")
    bench_argv = ["--json", str(bench_json), "--sections", "peak,env,train"]
    if args.quick:
        bench_argv += ["--batches", "1,4", "--steps", "2", "--repeats", "1", "--ref-seconds",
                       "0.1", "--fast-compile", "--train-seeds", "1", "--train-updates", "2",
                       "--train-repeats", "1"]
    else:
        bench_argv += ["--batches", ",".join(map(str, _batches(args.max_batch))),
                       "--max-env-steps", str(4 * args.max_batch), "--train-seeds", "1,64,256"]
    t0 = time.perf_counter()
    doc["bench"] = bench._jsonable(bench.main(bench_argv))
    doc["bench_s"] = time.perf_counter() - t0

    if args.experiment:
        scale = "smoke" if args.quick else "paper"
        cmd = [sys.executable, "-m", "sweeps.grid", "--scale", scale, "--experiment",
               args.experiment, "--out", str(out_path.parent / "gpu_check_grid"), "--no-resume"]
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=args.experiment_timeout_s, env=dict(os.environ))
            rc, tail = proc.returncode, (proc.stdout + proc.stderr)[-4000:]
        except subprocess.TimeoutExpired as e:
            rc, tail = "timeout", str(e.stdout or "")[-4000:]
        doc["experiment"] = {"command": cmd, "scale": scale, "returncode": rc,
                             "wall_s": time.perf_counter() - t0, "output_tail": tail}

    tmp = out_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    os.replace(tmp, out_path)
    print(f"gpu_check: wrote {out_path}")
    return 0 if doc.get("experiment", {}).get("returncode", 0) in (0,) else 1


if __name__ == "__main__":
    sys.exit(main())
