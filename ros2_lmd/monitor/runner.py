"""The one runner of the monitor, live and offline: frames are computed in parallel (model and LMD,
`Pipeline.compute`, stateless) and concluded one at a time in the order they were queued (alerts
and outputs, `Pipeline.conclude`, stateful), so the results never depend on the number of workers.

The live node queues with `when_full="drop_oldest"` (a late frame is worth less than the newest:
the superseded one is handed back to be counted as dropped); `ros2-lmd analyze` with
`when_full="wait"` (every frame of a bag is processed; reading waits for the model). How many
workers and torch threads use the CPU is monitor/resources.py's `inference_plan`.
"""

from __future__ import annotations

import functools
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

WHEN_FULL = ("drop_oldest", "wait")


class OrderedRunner(Generic[Item, Result]):
    """`compute(batch) -> results` in `workers` threads; `conclude(item, result, error)` for every
    item, one at a time, in queue order (`error` is the exception `compute` raised for the item's
    batch, `result` then None). A worker takes up to `batch` consecutive items; with `wait`, it
    waits for a full batch until `flush` or `close`.

    An exception from `conclude` goes to `on_error(item, error)` when given (the live node logs it
    and goes on); otherwise the first one is raised again by `join` or `close`.
    """

    def __init__(
        self,
        compute: Callable[[list[Item]], Sequence[Result]],
        conclude: Callable[[Item, Result | None, BaseException | None], None],
        *,
        workers: int = 1,
        batch: int = 1,
        depth: int = 1,
        when_full: str = "drop_oldest",
        on_error: Callable[[Item, BaseException], None] | None = None,
        name: str = "lmd_runner",
    ) -> None:
        if when_full not in WHEN_FULL:
            raise ValueError(f"OrderedRunner: when_full must be one of {WHEN_FULL}, got {when_full!r}")
        if workers < 1 or batch < 1 or depth < 1:
            raise ValueError(
                f"OrderedRunner: need workers, batch, depth >= 1, got {workers}, {batch}, {depth}"
            )
        self.compute, self.conclude, self.on_error = compute, conclude, on_error
        self.workers, self.batch, self.when_full = workers, batch, when_full
        self.depth = max(depth, batch) if when_full == "wait" else depth
        self._items: deque[Item] = deque()
        self._state = threading.Condition()  # guards everything below
        self._taken = 0  # items handed to workers (their queue numbers are 0 .. taken-1)
        self._concluded = 0  # items concluded (the next turn)
        self._flushing = False
        self._stopping = False
        self._error: BaseException | None = None
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    # --- Producer side ------------------------------------------------------------------------------

    def put(self, item: Item) -> Item | None:
        """Queue `item`. Returns the item it superseded (`drop_oldest` on a full queue), else None.
        With `wait`, blocks while the queue is full."""
        with self._state:
            if self._stopping:
                raise RuntimeError("OrderedRunner: put after close")
            superseded = None
            if len(self._items) >= self.depth:
                if self.when_full == "drop_oldest":
                    superseded = self._items.popleft()
                else:
                    self._state.wait_for(lambda: len(self._items) < self.depth or self._stopping)
            self._flushing = False
            self._items.append(item)
            self._state.notify_all()
            return superseded

    def flush(self) -> None:
        """Let the workers take a batch smaller than `batch` (no more items are coming for now)."""
        with self._state:
            self._flushing = True
            self._state.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every queued item is concluded (flushes first). False on timeout."""
        self.flush()
        with self._state:
            done = self._state.wait_for(lambda: not self._items and self._concluded == self._taken, timeout)
            self._raise_error()
            return done

    def pending(self) -> int:
        """Items queued or in progress (computed but not yet concluded)."""
        with self._state:
            return len(self._items) + self._taken - self._concluded

    def close(self, discard: bool = False) -> list[Item]:
        """Stop the workers. Without `discard`, everything queued is concluded first; with it, the
        items still queued are handed back unprocessed (the live node counts them as dropped).
        Items already taken by a worker are always concluded. Safe to call twice."""
        if not discard:
            self.join()
        with self._state:
            left = list(self._items)
            self._items.clear()
            self._stopping = True
            self._state.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()
        with self._state:
            self._raise_error()
        return left

    def __enter__(self) -> OrderedRunner[Item, Result]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.close(discard=exc_type is not None)

    # --- Workers ----------------------------------------------------------------------------------

    def _take(self) -> tuple[int, list[Item]] | None:
        with self._state:
            self._state.wait_for(
                lambda: (
                    self._stopping
                    or len(self._items) >= self.batch
                    or (self._items and (self._flushing or self.when_full == "drop_oldest"))
                )
            )
            if not self._items:
                return None  # stopping
            count = min(self.batch, len(self._items))
            items = [self._items.popleft() for _ in range(count)]
            first = self._taken
            self._taken += count
            self._state.notify_all()  # room in the queue
            return first, items

    def _work(self) -> None:
        while (taken := self._take()) is not None:
            first, items = taken
            # Taken items are always concluded, even while stopping: later turns wait for them.
            results: list[Result | None]
            failure: Exception | None
            try:
                results, failure = list(self.compute(items)), None
                if len(results) != len(items):
                    raise RuntimeError(f"compute returned {len(results)} results for {len(items)} items")
            except Exception as error:  # noqa: BLE001 — reported with each item of the batch
                results, failure = [None] * len(items), error
            with self._state:
                self._state.wait_for(functools.partial(self._is_turn, first))
            for item, result in zip(items, results):
                self._conclude_one(item, result, failure)
            with self._state:
                self._concluded += len(items)
                self._state.notify_all()

    def _is_turn(self, first: int) -> bool:
        """Whether every item queued before `first` is concluded (called under `_state`)."""
        return self._concluded == first

    def _conclude_one(self, item: Item, result: Result | None, failure: BaseException | None) -> None:
        try:
            self.conclude(item, result, failure)
        except Exception as error:  # noqa: BLE001 — a failing conclusion must not stop the workers
            if self.on_error is not None:
                try:
                    self.on_error(item, error)
                    return
                except Exception as handler_error:  # noqa: BLE001
                    error = handler_error
            with self._state:
                if self._error is None:
                    self._error = error

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error
