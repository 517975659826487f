"""One owner per run directory: a lock file with the owner's pid, host and a heartbeat.

``RunLock(run_dir)`` writes ``run.lock`` (JSON: pid, host, started, heartbeat) when no live owner
holds it; a background thread refreshes the heartbeat every ``heartbeat_s`` seconds. A lock is
*stale* when its owner's process is gone (same host) or its heartbeat is older than ``stale_s``
(a hung owner, or one on another host that died: a Dask worker on a shared filesystem); a stale lock is taken over. Reading and
replacing the lock happen under ``flock`` on a side file, so two processes never both take it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

LOCK = "run.lock"
MUTEX = ".run.lock.mutex"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lock(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The lock's content, or None when there is no (readable) lock."""
    try:
        return json.loads((Path(run_dir) / LOCK).read_text())
    except (OSError, ValueError):
        return None


def lock_is_live(info: dict[str, Any] | None, stale_s: float = 120.0) -> bool:
    """Whether ``info`` (from :func:`read_lock`) names an owner that is still alive."""
    if not info:
        return False
    if info.get("host") == socket.gethostname() and not _alive(int(info.get("pid", -1))):
        return False
    return time.time() - float(info.get("heartbeat", 0)) < stale_s


def held_by_other(run_dir: str | os.PathLike) -> bool:
    """A live owner other than this process holds the run's lock."""
    info = read_lock(run_dir)
    return lock_is_live(info) and not (info.get("pid") == os.getpid() and info.get("host") == socket.gethostname())


@contextlib.contextmanager
def _mutex(run_dir: Path) -> Iterator[None]:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / MUTEX, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class RunLock:
    """``acquire()`` -> bool (non-blocking), ``release()``; also a context manager that waits."""

    def __init__(self, run_dir: str | os.PathLike, heartbeat_s: float = 10.0, stale_s: float = 120.0) -> None:
        self.run_dir = Path(run_dir)
        self.heartbeat_s, self.stale_s = heartbeat_s, stale_s
        self.info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        self.taken_over: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _write(self) -> None:
        path = self.run_dir / LOCK
        tmp = path.with_name(f".{LOCK}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**self.info, "heartbeat": time.time()}))
        os.replace(tmp, path)

    def _mine(self) -> bool:
        info = read_lock(self.run_dir)
        return bool(info) and all(info.get(k) == v for k, v in self.info.items())

    def acquire(self) -> bool:
        """Take the lock if it is free or stale; False while a live owner holds it."""
        with _mutex(self.run_dir):
            current = read_lock(self.run_dir)
            if current and not all(current.get(k) == v for k, v in self.info.items()):
                if lock_is_live(current, self.stale_s):
                    return False
                self.taken_over = current
            self._write()
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat {self.run_dir.name}")
        self._thread.start()
        return True

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with _mutex(self.run_dir):
                if not self._mine():
                    return
                self._write()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with _mutex(self.run_dir):
            if self._mine():
                (self.run_dir / LOCK).unlink(missing_ok=True)

    def wait(self, poll_s: float = 2.0, say: Any = None) -> "RunLock":
        """Block until the lock is taken; while another process holds it, say once (to stderr, or to
        ``say``) whom this process waits for."""
        told = False
        while not self.acquire():
            if not told:
                info = read_lock(self.run_dir) or {}
                message = (f"{self.run_dir}: waiting for process {info.get('pid', '?')} on {info.get('host', '?')} "
                           f"(holding it since {info.get('started', '?')}) to finish this run")
                (say or (lambda text: print(text, file=sys.stderr, flush=True)))(message)
                told = True
            time.sleep(poll_s)
        return self

    def __enter__(self) -> "RunLock":
        return self.wait()

    def __exit__(self, *exc: Any) -> None:
        self.release()
