"""The grid's hang guard: restart a sweep whose cell stopped making progress.

Why it exists: on jaxlib 0.10.x the CPU runtime can deadlock on vmapped
training programs (the caller waiting in ``BlockUntilReady`` while every XLA
worker sits idle): batched LAPACK QR blocks pool workers waiting for tasks
queued to the same pool (``tests/repro_jaxlib_cpu_freeze.py``; the flags of
``sweeps/platform.py`` avoided it in every measured run). Python cannot
interrupt that wait, so a daemon thread watches the cell in flight and
re-executes the same command line; finished cells are on disk and are reused,
so a restart loses only the stuck cell.

What counts as progress (checked over a window of ``window_s`` seconds while a
cell computes):

* a **heartbeat**: :func:`beat` called by the cell, a learner's progress
  callback (``jax.debug.callback(beat)`` inside a scanned update, which only
  runs when the device reaches it) or anything else that knows the cell is
  alive. Any beat within the window means healthy, whatever the CPU does.
* on the **CPU backend** only, host CPU time: the frozen runtime uses none,
  a computing one does. A cell that neither beats nor uses ≥ ``min_cpu_s`` of
  CPU in the window is stalled.
* on an **accelerator** backend a healthy cell may wait with ~0 host CPU for
  as long as its device program runs, so CPU time says nothing: the guard acts
  only on a cell that has beaten at least once (it is instrumented) and then
  stays silent for the window. An uninstrumented accelerator cell is never
  restarted.

After :data:`MAX_RESTARTS` restarts of one command the guard only warns.
"""

from __future__ import annotations

import os
import sys
import threading
import time

#: Environment variable counting guard restarts of one grid invocation.
RESTARTS_ENV = "JAXSG_GRID_RESTARTS"
MAX_RESTARTS = 3

_last_beat: float | None = None  # time.monotonic() of the last beat, process-wide


def beat(*_args) -> None:
    """Record that the cell in flight made progress (cheap; any thread; ignores
    arguments so it can be a ``jax.debug.callback`` target)."""
    global _last_beat
    _last_beat = time.monotonic()


def last_beat() -> float | None:
    return _last_beat


def is_stalled(*, silent_s: float, cpu_used_s: float, window_s: float, min_cpu_s: float,
               backend: str, instrumented: bool) -> bool:
    """The guard's decision for one window (pure).

    ``silent_s``: seconds since the last heartbeat of this cell (or since it
    started); ``cpu_used_s``: process CPU seconds over the last ``window_s``;
    ``instrumented``: the cell has beaten at least once.
    """
    if silent_s < window_s:
        return False  # a recent heartbeat (or a fresh cell)
    if backend == "cpu":
        return cpu_used_s < min_cpu_s
    return instrumented


class HangGuard:
    """Watch the cell in flight (see the module docstring); ``window_s = 0``
    disables it. ``backend`` defaults to ``jax.default_backend()`` at the first
    cell."""

    def __init__(self, window_s: float, min_cpu_s: float = 1.0, backend: str | None = None):
        self.window_s, self.min_cpu_s = float(window_s), float(min_cpu_s)
        self.backend = backend
        self._samples: list[tuple[float, float]] = []  # (wall, process CPU) while busy
        self._label: str | None = None
        self._start = 0.0
        self._beat_at_start: float | None = None
        self._lock = threading.Lock()
        if self.window_s > 0:
            threading.Thread(target=self._watch, name="grid-hang-guard", daemon=True).start()

    def busy(self, label: str | None) -> None:
        """A cell called ``label`` starts computing (``None``: it finished)."""
        if label is not None and self.backend is None:
            import jax

            self.backend = jax.default_backend()
        with self._lock:
            self._label = label
            now = time.monotonic()
            self._start, self._beat_at_start = now, last_beat()
            self._samples = [] if label is None else [(now, time.process_time())]

    def _check(self) -> str | None:
        """The label of a stalled cell, or None (one watch step)."""
        with self._lock:
            if not self._samples:
                return None
            now, cpu = time.monotonic(), time.process_time()
            self._samples.append((now, cpu))
            old = [s for s in self._samples if now - s[0] >= self.window_s]
            if not old:
                return None
            self._samples = self._samples[len(old) - 1:]
            beat_t = last_beat()
            instrumented = beat_t is not None and beat_t != self._beat_at_start
            since = beat_t if instrumented and beat_t > self._start else self._start
            stalled = is_stalled(silent_s=now - since, cpu_used_s=cpu - old[-1][1],
                                 window_s=self.window_s, min_cpu_s=self.min_cpu_s,
                                 backend=self.backend or "cpu", instrumented=instrumented)
            return self._label if stalled else None

    def _watch(self) -> None:
        while True:
            time.sleep(min(5.0, self.window_s / 4))
            label = self._check()
            if label is not None:
                self._restart(label)

    def _restart(self, label: str) -> None:
        restarts = int(os.environ.get(RESTARTS_ENV, "0"))
        what = ("no heartbeat and no CPU progress" if self.backend == "cpu"
                else "no heartbeat")
        if restarts >= MAX_RESTARTS:
            print(f"warning: {label}: {what} for {self.window_s:.0f} s and {restarts} "
                  "restarts already; still waiting", file=sys.stderr, flush=True)
            with self._lock:
                self._samples = []
            return
        print(f"warning: {label}: {what} for {self.window_s:.0f} s (a known jaxlib CPU hang); "
              f"restarting the grid ({restarts + 1}/{MAX_RESTARTS}), finished cells are reused",
              file=sys.stderr, flush=True)
        sys.stdout.flush()
        os.environ[RESTARTS_ENV] = str(restarts + 1)
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])  # the same command
