"""One budget of decoded pixels in flight for the whole process.

Decoding is where a dataset check spends its memory (about 3 bytes per pixel: the RGB output,
or a progressive JPEG's coefficient buffer, which covers the whole image whatever the scale of
the decode). Every image decode and contact sheet of every check running in the process holds
its pixels here first, so memory depends on this budget, not on the number of worker threads
or of members checking datasets at once. Requests are served in arrival order (a large image is
not starved by a stream of small ones); one larger than the whole budget waits for all of it
and then runs alone.
"""

from __future__ import annotations

import ctypes
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Called with True when a check starts waiting for pixels held by another check, False when it
# no longer waits. Called from worker threads: it must only hand the news over.
OnWait = Callable[[bool], None]


class _Request:
    __slots__ = ("owner", "pixels")

    def __init__(self, owner: BudgetUser, pixels: int) -> None:
        self.owner = owner
        self.pixels = pixels


class PixelBudget:
    """A weighted, first-come first-served semaphore of pixels, safe across threads.

    ``pixels`` 0 means no limit (the budget still records its peak): the baseline the
    memory benchmark compares against.
    """

    def __init__(self, pixels: int) -> None:
        self.total = pixels
        self.in_flight = 0
        self.peak = 0  # the most pixels ever held at once
        self._holders: dict[BudgetUser, int] = {}
        self._queue: deque[_Request] = deque()
        self._changed = threading.Condition()

    def user(self, on_wait: OnWait | None = None) -> BudgetUser:
        """A handle for one check: its waits behind *other* checks are reported to ``on_wait``."""
        return BudgetUser(self, on_wait)

    def _acquire(self, request: _Request) -> None:
        with self._changed:
            self._queue.append(request)
            blocked_by_others = False
            while not self._grantable(request):
                if not blocked_by_others and self._others_ahead(request):
                    blocked_by_others = True
                    request.owner._blocked(True)
                self._changed.wait()
            self._queue.popleft()
            self.in_flight += request.pixels
            self.peak = max(self.peak, self.in_flight)
            self._holders[request.owner] = self._holders.get(request.owner, 0) + request.pixels
            self._changed.notify_all()  # the next in line may fit too
        if blocked_by_others:
            request.owner._blocked(False)

    def _release(self, request: _Request) -> None:
        with self._changed:
            self.in_flight -= request.pixels
            left = self._holders[request.owner] - request.pixels
            if left:
                self._holders[request.owner] = left
            else:
                del self._holders[request.owner]
            self._changed.notify_all()

    def _grantable(self, request: _Request) -> bool:
        if self._queue[0] is not request:
            return False
        return not self.total or self.in_flight + request.pixels <= self.total

    def _others_ahead(self, request: _Request) -> bool:
        """Whether pixels held or queued ahead belong to another check (not just this one's own
        workers waiting for each other, which is ordinary progress)."""
        if any(owner is not request.owner for owner in self._holders):
            return True
        return any(queued.owner is not request.owner for queued in self._queue if queued is not request)


class BudgetUser:
    """One check's access to the process budget."""

    def __init__(self, budget: PixelBudget, on_wait: OnWait | None) -> None:
        self.budget = budget
        self._on_wait = on_wait
        self._waiting = 0
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        """Hold ``pixels`` (at most the whole budget) while the block runs."""
        total = self.budget.total
        request = _Request(self, min(pixels, total) if total else pixels)
        self.budget._acquire(request)
        try:
            yield
        finally:
            self.budget._release(request)

    def _blocked(self, starts: bool) -> None:
        """Several workers of one check may wait at once: report the first start and last end."""
        with self._lock:
            self._waiting += 1 if starts else -1
            edge = self._waiting == (1 if starts else 0)
        if edge and self._on_wait is not None:
            self._on_wait(starts)


_shared: dict[int, PixelBudget] = {}
_shared_lock = threading.Lock()


def shared_budget(pixels: int) -> PixelBudget:
    """The process's budget of ``pixels`` (the ``dataset_decode_pixels`` setting), made on first use.

    A process runs with one setting, hence one budget shared by every check; keying by size
    only keeps checks made with other settings (tests, benchmarks) from resizing it.
    """
    with _shared_lock:
        budget = _shared.get(pixels)
        if budget is None:
            budget = _shared[pixels] = PixelBudget(pixels)
            if pixels:
                return_large_blocks_to_the_system()
        return budget


# glibc's mallopt(M_MMAP_THRESHOLD): blocks from this size up are mapped on their own and
# unmapped when freed. By default glibc raises the threshold (up to 32 MiB) each time such a
# block is freed, so the next image's buffers land in per-thread heaps that keep them after
# use: a process then holds a few images' worth more than the budget lets through at once.
# 16 MiB, not lower: a normal photo's buffers (about 9 MiB at 2048 px) stay in the heaps, since
# mapping and zeroing each of them anew cost ~7% of a 40-photo check (benchmarks/intake_memory.py
# case (c)); the buffers that matter for the peak (a 64 MP progressive JPEG's ~190 MiB of
# coefficients, its decoded pixels) are far above it.
_M_MMAP_THRESHOLD = -3
LARGE_BLOCK_BYTES = 16 * 1024 * 1024


def return_large_blocks_to_the_system() -> bool:
    """Fix glibc's threshold (a no-op elsewhere); True when it took effect."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES))
