"""Standalone reproducer of the jaxlib 0.10 CPU-runtime freeze (not collected by pytest).

    python tests/repro_jaxlib_cpu_freeze.py --runs 3             # minimal: batched QRs
    python tests/repro_jaxlib_cpu_freeze.py --runs 3 --flags     # with sweeps.platform's flags
    python tests/repro_jaxlib_cpu_freeze.py --program madfrl     # the original trigger

What freezes (gdb on a frozen 48-follower MADFRL probe): XLA's intra-op
thread pool has one worker per core (2 here). jaxlib 0.10's LAPACK QR kernel
(``lapack_sgeqrf_ffi`` → ``jax::QrFactorization`` → ``jax::ParallelBatchMap``)
splits a batched QR into tasks on *that same pool* and blocks in
``BlockingCounter::Wait``. When independent QR thunks run concurrently on every
worker, each waits for tasks that no free worker can run: a deadlock, every
thread parked in a futex, the caller in ``BlockUntilReady``, 0 % CPU. Batched
QRs come from vmapped ``nn.initializers.orthogonal`` inside the learners'
``train`` functions.

``--program qr`` (default, seconds): one jitted function with 16 independent
QRs of a (96, 16, 16) batch, called 200 times. ``--program madfrl``: MADFRL at
the sgin defaults (``madfrl.Config()`` on ``jaxsg.make("sgin")``, 48 followers),
``jit(vmap)`` over 2 seeds (minutes).

Each run is a child process; the parent watches its CPU time (``/proc``,
Linux): alive but < 0.5 s of CPU in ``--stall-s`` seconds = frozen; it is
killed and counted. Exit status 1 if any run froze.

Measured on the 2-core development machine (2026-11-30):
jaxlib 0.10.2, qr: froze 4/4 with JAX's default flags, 2/2 with only
``--xla_cpu_multi_thread_eigen=false``; finished 2/2 with only
``--xla_cpu_enable_concurrency_optimized_scheduler=false`` and 3/3 with
``--flags`` (both flags + synchronous dispatch). madfrl: froze 3/3 without
the flags, finished 6/6 with them (and 3/3 with the code of 819d075, where the
pin was set). jaxlib 0.9.2 finished qr without flags.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def qr_program(args: argparse.Namespace) -> str:
    import jax
    import jax.numpy as jnp

    def f(key):
        keys = jax.random.split(key, 16)
        return [jnp.linalg.qr(jax.random.normal(k, (96, 16, 16)))[0].sum() for k in keys]

    g = jax.jit(f)
    for i in range(200):
        jax.block_until_ready(g(jax.random.key(i)))
    return "16 batched QRs x 200 calls"


def madfrl_program(args: argparse.Namespace) -> str:
    import jax

    import jaxsg
    from agents.madfrl import Config, make_train

    env, params = jaxsg.make("sgin")
    train = jax.jit(jax.vmap(make_train(env, Config(num_updates=args.updates)),
                             in_axes=(0, None)))
    keys = jax.random.split(jax.random.key(0), 2)
    jax.block_until_ready(train(keys, params))
    return f"MADFRL, {env.num_agents('follower')} followers, 2 seeds"


def child(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    if args.flags:
        from sweeps.platform import configure_cpu_runtime

        configure_cpu_runtime()
    import jax

    start = time.perf_counter()
    what = (qr_program if args.program == "qr" else madfrl_program)(args)
    print(f"finished in {time.perf_counter() - start:.1f} s ({what}; jax {jax.__version__}, "
          f"XLA_FLAGS={os.environ.get('XLA_FLAGS')!r})", flush=True)


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def watch(args: argparse.Namespace) -> int:
    frozen = 0
    for run in range(1, args.runs + 1):
        cmd = [sys.executable, __file__, "--child", "--program", args.program,
               "--updates", str(args.updates)]
        cmd += ["--flags"] if args.flags else []
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        start, last_cpu, last_change = time.monotonic(), 0.0, time.monotonic()
        status = None
        while proc.poll() is None:
            time.sleep(2.0)
            cpu = cpu_seconds(proc.pid)
            if cpu is None:
                continue
            if cpu - last_cpu >= 0.5:
                last_cpu, last_change = cpu, time.monotonic()
            elif time.monotonic() - last_change >= args.stall_s:
                status = f"FROZE (no CPU for {args.stall_s:.0f} s after {last_cpu:.0f} s of CPU)"
                proc.kill()
                frozen += 1
                break
        out = proc.communicate()[0].strip().splitlines()
        if status is None:
            status = out[-1] if proc.returncode == 0 and out else f"failed rc={proc.returncode}"
        print(f"run {run}/{args.runs}: {status}; wall {time.monotonic() - start:.0f} s",
              flush=True)
    print(f"{frozen} of {args.runs} runs froze")
    return 1 if frozen else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--program", choices=("qr", "madfrl"), default="qr")
    parser.add_argument("--updates", type=int, default=400, help="MADFRL num_updates")
    parser.add_argument("--flags", action="store_true",
                        help="apply sweeps.platform.configure_cpu_runtime() first")
    parser.add_argument("--stall-s", type=float, default=30.0,
                        help="no CPU progress for this long = frozen")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0
    return watch(args)


if __name__ == "__main__":
    sys.exit(main())
