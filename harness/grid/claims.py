"""Claims on final runs: which worker runs a seed, so no two run it, on one machine or several.

A claim is a lock file created with ``O_EXCL`` (atomic on local disks and on NFS v3+), naming its owner
(``host:pid``). The owner refreshes its modification time every ``refresh`` seconds while it holds it. A claim is
stale, and taken over, when its owner is a dead process on this host or, whatever the host (a shared results
directory in cluster mode, where a process id says nothing), when it has not been refreshed for ``grace`` seconds.
Both follow the trials' heartbeat (harness.grid.liveness): refreshed twice a beat, stale after three silent beats.
Records decide what is done; a claim only says who is doing it now.

Why files, not final runs enqueued as fixed-parameter trials of a per-cell Optuna study (DESIGN.md's suggestion):
the records must live where every worker sees them anyway, so a lock beside them needs nothing more, and a second
study would be a second place that says what is done, which can disagree with the records after a crash.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from .liveness import GRACE_BEATS, heartbeat_seconds, is_alive, worker_id


class Claim:
    """``with Claim(path) as claimed:`` — ``claimed`` is True when this process holds it until the block ends."""

    def __init__(self, path: Path, refresh: float | None = None, grace: float | None = None) -> None:
        beat = heartbeat_seconds()
        self.path = Path(path)
        self.refresh = refresh or beat / 2
        self.grace = grace or GRACE_BEATS * beat
        self.owned = False
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def __enter__(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                if not self.stale():
                    return False
                self.path.unlink(missing_ok=True)  # its worker died mid-run
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(worker_id())
            self.owned = True
            self._beat = threading.Thread(target=self._keep_fresh, name=f"claim {self.path.name}", daemon=True)
            self._beat.start()
            return True
        return False

    def __exit__(self, *exc: object) -> None:
        if self.owned:
            self._stop.set()
            if self._beat is not None:
                self._beat.join()
            self.path.unlink(missing_ok=True)

    def stale(self) -> bool:
        """Whether the claim on disk belongs to nobody alive (False once it is gone: the caller tries again)."""
        try:
            owner = self.path.read_text().strip()
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return False
        if age > self.grace:
            return True
        # an empty file is a claim being written (created, owner not yet in it): alive until the grace ends
        return bool(owner) and not is_alive(owner)

    def _keep_fresh(self) -> None:
        while not self._stop.wait(self.refresh):
            try:
                os.utime(self.path)
            except FileNotFoundError:  # taken over after a stall longer than the grace: nothing left to refresh
                return
