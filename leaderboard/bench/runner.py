"""Closed-loop load: N tasks each send a request, wait for the answer, repeat.

Every run is bounded twice, by time and by a request count, and may be
spread over several load-generator processes (one Python process tops out
near one core; on a 2-core machine the generator must not be the bottleneck
it measures). Each process builds its own workload from a picklable spec,
starts on a shared clock, and sends its raw latencies back to be merged.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import multiprocessing.connection
import time
from array import array
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from leaderboard.bench.catalog import DEFAULT_MAX_REQUESTS
from leaderboard.bench.process_cpu import Reading, cpu_reading, spent_by_role
from leaderboard.bench.stats import Summary, summarize

# (completed requests in the measurement window, fraction of the window elapsed)
Progress = Callable[[int, float], None]


class Workload:
    """One kind of request. Built in the process that sends it.

    `call` returns how many items it completed (1 for a unary request, the
    successful submissions of a batch); per-item failures go to `item_errors`.
    """

    method = ""  # "ScoreService.SubmitScore": named when the server says UNIMPLEMENTED

    def __init__(self) -> None:
        self.item_errors: Counter[str] = Counter()

    async def open(self) -> None:
        return None

    async def call(self) -> int:
        raise NotImplementedError

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class WorkloadSpec:
    """How to build a workload in another process: `module:Class` and keyword params."""

    path: str
    params: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Workload:
        module_name, _, name = self.path.partition(":")
        cls = getattr(importlib.import_module(module_name), name)
        workload = cls(**self.params)
        if not isinstance(workload, Workload):
            raise TypeError(f"{self.path} is not a Workload")
        return workload


@dataclass(frozen=True)
class Bounds:
    """A measurement window of `duration_s` after `warmup_s`, and at most `max_requests` in it."""

    duration_s: float
    max_requests: int = DEFAULT_MAX_REQUESTS
    warmup_s: float = 0.0


@dataclass
class Recording:
    """Raw figures of one measurement (mergeable across processes)."""

    latencies: array[float] = field(default_factory=lambda: array("d"))
    # When each call of the window was answered, failures included (the shared clock).
    answered_at: array[float] = field(default_factory=lambda: array("d"))
    errors: Counter[str] = field(default_factory=Counter)
    items: int = 0
    item_errors: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    unimplemented: str | None = None
    # CPU seconds each part of the deployment spent in the window (process_cpu.py)
    cpu_s: dict[str, float] = field(default_factory=dict)

    def merge(self, other: Recording) -> None:
        self.latencies.extend(other.latencies)
        self.answered_at.extend(other.answered_at)
        self.errors.update(other.errors)
        self.items += other.items
        self.item_errors.update(other.item_errors)
        self.elapsed_s = max(self.elapsed_s, other.elapsed_s)
        self.unimplemented = self.unimplemented or other.unimplemented

    @property
    def requests(self) -> int:
        return len(self.latencies) + sum(self.errors.values())

    def summary(self) -> Summary:
        return summarize(
            self.latencies,
            errors=self.errors,
            elapsed_s=self.elapsed_s,
            items=self.items,
            item_errors=self.item_errors,
            answered_at=self.answered_at,
        )


def error_code(exc: BaseException) -> str:
    """A gRPC status name, or the exception's type for anything else (Redis, OS errors)."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return exc.code().name
    return type(exc).__name__


async def closed_loop(
    workload: Workload,
    concurrency: int,
    bounds: Bounds,
    *,
    start_at: float | None = None,
    progress: Progress | None = None,
) -> Recording:
    """Run `concurrency` tasks against `workload` within `bounds`.

    Only requests started inside the window count; the window ends at its
    duration or after `max_requests` requests, whichever comes first. An
    UNIMPLEMENTED answer stops the run: there is nothing to measure yet.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    clock = time.perf_counter  # CLOCK_MONOTONIC: comparable across processes on one machine
    begin = clock() if start_at is None else start_at
    if begin > clock():
        await asyncio.sleep(begin - clock())
    window_start = begin + bounds.warmup_s
    window_end = window_start + bounds.duration_s
    rec = Recording()
    issued = 0
    last_done = window_start

    def answered() -> float:
        now = clock()
        rec.answered_at.append(now)
        return now

    stop = asyncio.Event()

    async def worker() -> None:
        nonlocal issued, last_done
        while not stop.is_set():
            started = clock()
            if started >= window_end:
                return
            measured = started >= window_start
            if measured:
                if issued >= bounds.max_requests:
                    return
                issued += 1
            try:
                done_items = await workload.call()
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    rec.unimplemented = workload.method or "the target RPC"
                    stop.set()
                    return
                if measured:
                    rec.errors[exc.code().name] += 1
                    last_done = max(last_done, answered())
                continue
            except Exception as exc:
                if measured:
                    rec.errors[error_code(exc)] += 1
                    last_done = max(last_done, answered())
                continue
            if measured:
                done = answered()
                rec.latencies.append(done - started)
                rec.items += done_items
                last_done = max(last_done, done)

    async def ticker() -> None:
        assert progress is not None
        while True:
            now = clock()
            fraction = 0.0 if now < window_start else min(1.0, (now - window_start) / bounds.duration_s)
            progress(rec.requests, fraction)
            await asyncio.sleep(0.1)

    ticking = asyncio.create_task(ticker()) if progress is not None else None
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        if ticking is not None:
            ticking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticking
    rec.elapsed_s = max(0.0, last_done - window_start) if rec.requests else 0.0
    rec.item_errors.update(workload.item_errors)
    if progress is not None:
        progress(rec.requests, 1.0)
    return rec


def split(total: int, parts: int) -> list[int]:
    """`total` spread over `parts` as evenly as possible (earlier parts get the remainder)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


async def run_load(
    workload: Workload | WorkloadSpec,
    *,
    concurrency: int,
    bounds: Bounds,
    processes: int = 1,
    progress: Progress | None = None,
) -> Recording:
    """Measure `workload` at `concurrency` in-flight requests, from one or more processes."""
    if processes <= 1:
        built = workload.build() if isinstance(workload, WorkloadSpec) else workload
        await built.open()
        try:
            start_at = time.perf_counter() + 0.05
            async with _window_cpu(start_at, bounds) as cpu:
                rec = await closed_loop(built, concurrency, bounds, start_at=start_at, progress=progress)
            rec.cpu_s = cpu
            return rec
        finally:
            await built.close()
    if not isinstance(workload, WorkloadSpec):
        raise TypeError("several load-generator processes need a WorkloadSpec, not a built workload")
    processes = min(processes, concurrency)
    return await _run_processes(workload, concurrency, bounds, processes, progress)


async def _run_processes(
    spec: WorkloadSpec, concurrency: int, bounds: Bounds, processes: int, progress: Progress | None
) -> Recording:
    # spawn, not fork: gRPC's core threads do not survive a fork.
    ctx = multiprocessing.get_context("spawn")
    counts = ctx.RawArray("q", processes)
    pipes: list[multiprocessing.connection.Connection] = []
    procs: list[multiprocessing.process.BaseProcess] = []
    shares = zip(split(concurrency, processes), split(bounds.max_requests, processes), strict=True)
    try:
        for index, (tasks, max_requests) in enumerate(shares):
            parent_end, child_end = ctx.Pipe()
            share = Bounds(bounds.duration_s, max(1, max_requests), bounds.warmup_s)
            proc = ctx.Process(
                target=_child_main,
                args=(spec, tasks, share, index, counts, child_end),
                daemon=True,
                name=f"bench-load-{index}",
            )
            proc.start()
            child_end.close()
            procs.append(proc)
            pipes.append(parent_end)
        for pipe in pipes:
            kind, payload = await _receive(pipe, within_s=60.0)
            if kind != "ready":
                raise RuntimeError(f"load generator failed to start: {payload}")
        start_at = time.perf_counter() + 0.05
        for pipe in pipes:
            pipe.send(start_at)
        async with _window_cpu(start_at, bounds) as cpu:
            total = await _collect(pipes, counts, start_at, bounds, progress)
        total.cpu_s = cpu
        return total
    finally:
        for pipe in pipes:
            pipe.close()
        for child in procs:
            child.join(timeout=5)
            if child.is_alive():
                child.terminate()
                child.join()


@contextlib.asynccontextmanager
async def _window_cpu(start_at: float, bounds: Bounds) -> AsyncIterator[dict[str, float]]:
    """CPU seconds by role from the window's start to its end, or to the end of the load
    if that comes first (max_requests); filled in when the block ends."""
    spent: dict[str, float] = {}

    async def reading_at(moment: float) -> Reading | None:
        await asyncio.sleep(max(0.0, moment - time.perf_counter()))
        return await asyncio.to_thread(cpu_reading)  # a /proc walk takes a few ms: off the loop

    window_start = start_at + bounds.warmup_s
    first = asyncio.create_task(reading_at(window_start))
    last = asyncio.create_task(reading_at(window_start + bounds.duration_s))
    try:
        yield spent
    finally:
        if not first.done():  # over before the window began (UNIMPLEMENTED, a failure)
            first.cancel()
            last.cancel()
        else:
            before = first.result()
            if last.done():
                after = last.result()
            else:  # the load ended early (max_requests): read now
                last.cancel()
                after = await asyncio.to_thread(cpu_reading)
            if before is not None and after is not None:
                spent.update(spent_by_role(before, after))


async def _collect(
    pipes: list[multiprocessing.connection.Connection],
    counts: Any,
    start_at: float,
    bounds: Bounds,
    progress: Progress | None,
) -> Recording:
    total = Recording()
    deadline = start_at + bounds.warmup_s + bounds.duration_s + 60.0
    pending = list(pipes)
    while pending:
        if progress is not None:
            elapsed = time.perf_counter() - start_at - bounds.warmup_s
            progress(sum(counts), max(0.0, min(1.0, elapsed / bounds.duration_s)))
        for pipe in list(pending):
            if pipe.poll():
                kind, payload = pipe.recv()
                if kind != "done":
                    raise RuntimeError(f"load generator failed: {payload}")
                total.merge(payload)
                pending.remove(pipe)
        if time.perf_counter() > deadline:
            raise TimeoutError("load generators did not finish in time")
        await asyncio.sleep(0.05)
    return total


async def _receive(pipe: multiprocessing.connection.Connection, within_s: float) -> tuple[str, Any]:
    deadline = time.perf_counter() + within_s
    while not pipe.poll():
        if time.perf_counter() > deadline:
            raise TimeoutError("load generator did not answer")
        await asyncio.sleep(0.02)
    message: tuple[str, Any] = pipe.recv()
    return message


def _child_main(  # noqa: PLR0917 - multiprocessing passes args positionally
    spec: WorkloadSpec,
    concurrency: int,
    bounds: Bounds,
    index: int,
    counts: Any,
    pipe: multiprocessing.connection.Connection,
) -> None:
    def report(done: int, _fraction: float) -> None:
        counts[index] = done

    async def main() -> Recording:
        workload = spec.build()
        await workload.open()
        try:
            pipe.send(("ready", None))
            # Blocking is fine here: nothing else runs on this loop before the start.
            start_at: float = pipe.recv()
            return await closed_loop(workload, concurrency, bounds, start_at=start_at, progress=report)
        finally:
            await workload.close()

    try:
        recording = asyncio.run(main())
    except BaseException as exc:
        with contextlib.suppress(OSError):
            pipe.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise
    pipe.send(("done", recording))
