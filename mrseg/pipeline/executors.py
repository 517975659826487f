"""Where plan items run: a local process pool, or Dask distributed (a LocalCluster or a scheduler).

Both executors offer the same three calls, so the runner's dependency-aware loop is shared:
``submit(fn, *args) -> future``, ``wait_first(futures) -> set of done futures`` and ``close()``.
A future's ``result()`` raises when the task itself was lost (a crashed worker process, Dask's
``KilledWorker``); the runner counts that as a failed attempt and retries it.

Threads: each task learns how many threads it may use from ``threads_per_task``; the runner
exports it as ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` into the notebook kernel's environment.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from typing import Any, Callable, Iterable


def available_cores() -> int:
    """CPU cores this process may use (affinity-aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class LocalExecutor:
    """A pool of ``jobs`` worker processes; each task runs in a fresh process (spawned).

    A fresh process per task keeps one notebook's environment (thread variables, imported
    modules) from leaking into the next. A crashed worker breaks the pool: the pool is rebuilt
    and the affected futures raise, which the runner treats as a failed attempt.
    """

    name = "local"

    def __init__(self, jobs: int) -> None:
        self.jobs = max(1, int(jobs))
        self.threads_per_task = max(1, available_cores() // self.jobs)
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                      max_tasks_per_child=1)

    def submit(self, fn: Callable[..., Any], *args: Any) -> cf.Future:
        try:
            return self._pool.submit(fn, *args)
        except cf.process.BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._pool.submit(fn, *args)

    def wait_first(self, futures: Iterable[cf.Future]) -> set[cf.Future]:
        done, _ = cf.wait(list(futures), return_when=cf.FIRST_COMPLETED)
        return set(done)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Dask distributed: ``scheduler`` is an address (``tcp://host:8786``) of an existing cluster,
    or None for a ``LocalCluster(n_workers=jobs, threads_per_worker=1)`` on this machine.

    Tasks are submitted with ``pure=False`` (every attempt really runs; the run manifest makes a
    repeated run a quick no-op). Dask itself re-schedules a task whose worker died, up to its
    ``distributed.scheduler.allowed-failures``; after that the future raises ``KilledWorker``.
    """

    name = "dask"

    def __init__(self, jobs: int, scheduler: str | None = None) -> None:
        from distributed import Client, LocalCluster

        self.jobs = max(1, int(jobs))
        self._cluster = None
        if scheduler:
            self._client = Client(scheduler)
            # Unknown machines: each task sizes its threads from its own worker (see runner).
            self.threads_per_task = None
        else:
            self._cluster = LocalCluster(n_workers=self.jobs, threads_per_worker=1, processes=True,
                                         dashboard_address=None)
            self._client = Client(self._cluster)
            self.threads_per_task = max(1, available_cores() // self.jobs)

    @property
    def client(self):
        return self._client

    def submit(self, fn: Callable[..., Any], *args: Any):
        return self._client.submit(fn, *args, pure=False)

    def wait_first(self, futures: Iterable[Any]) -> set[Any]:
        from distributed import wait

        done, _ = wait(list(futures), return_when="FIRST_COMPLETED")
        return set(done)

    def close(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(kind: str, jobs: int, scheduler: str | None = None) -> LocalExecutor | DaskExecutor:
    """``local`` (a process pool) or ``dask`` (``scheduler`` address, or a LocalCluster)."""
    if kind == "local":
        if scheduler:
            raise ValueError("--scheduler is only used with --executor dask")
        return LocalExecutor(jobs)
    if kind == "dask":
        return DaskExecutor(jobs, scheduler)
    raise ValueError(f"executor must be 'local' or 'dask', got {kind!r}")
