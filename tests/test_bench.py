"""The benchmark harness: statistics, the load loop's bounds, UNIMPLEMENTED
detection, and the echo and redis scenarios end to end (about a second each).
Performance is never asserted here: figures depend on the machine."""

from __future__ import annotations

import asyncio
import json
import time
from array import array
from pathlib import Path
from typing import ClassVar

import grpc
import pytest
import redis.asyncio as aioredis
from rich.console import Console
from rich.progress import Progress

from leaderboard.bench.availability import NotImplementedYet, require
from leaderboard.bench.context import BenchContext, Options
from leaderboard.bench.driver import Driver, Plan
from leaderboard.bench.echo_server import EchoServerProcess
from leaderboard.bench.process_cpu import LOAD, cpu_reading, describe, per_item_us, spent_by_role
from leaderboard.bench.report import NOT_IMPLEMENTED, OK
from leaderboard.bench.runner import Bounds, Recording, Workload, WorkloadSpec, closed_loop, run_load
from leaderboard.bench.scenarios import SCENARIOS, Measured, Params, Scenario
from leaderboard.bench.scenarios.echo import EchoCall
from leaderboard.bench.scenarios.redis import RedisScenario
from leaderboard.bench.stats import median_run, percentile, summarize
from leaderboard.bench.steal import cpu_ticks, steal_percent
from leaderboard.cli.bench import is_loopback, remote_targets
from leaderboard.cli.main import main
from leaderboard.runtime.config import Settings, load_settings
from leaderboard.runtime.embedded import free_port

# --- statistics ---------------------------------------------------------------------------


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7
    assert percentile([], 50) == 0
    with pytest.raises(ValueError):
        percentile(values, 0)


def test_summary_figures() -> None:
    latencies = [i / 1000 for i in range(100, 0, -1)]  # 1..100 ms, unsorted
    summary = summarize(latencies, errors={"UNAVAILABLE": 2}, elapsed_s=2.0, items=1000)
    assert summary.requests == 100
    assert summary.requests_per_s == 50
    assert summary.items_per_s == 500
    assert summary.p50_ms == pytest.approx(50)
    assert summary.p99_ms == pytest.approx(99)
    assert summary.max_ms == pytest.approx(100)
    assert summary.mean_ms == pytest.approx(50.5)
    assert summary.errors == {"UNAVAILABLE": 2}
    assert summary.error_count == 2
    empty = summarize([], elapsed_s=0.0)
    assert (empty.requests_per_s, empty.p99_ms, empty.longest_gap_ms) == (0, 0, 0)
    # A stall: answers every 10 ms, then none for 180 ms (given out of order).
    stalled = summarize([0.01] * 5, elapsed_s=1.0, answered_at=[100.21, 100.0, 100.01, 100.02, 100.2])
    assert stalled.longest_gap_ms == pytest.approx(180)


def test_median_run_is_a_whole_run() -> None:
    runs = [summarize([0.001] * n, elapsed_s=1.0) for n in (30, 10, 20)]
    assert median_run(runs).requests == 20
    assert median_run(runs[:2]).requests == 10  # even count: the lower middle


# --- the load loop ----------------------------------------------------------------------


class Sleeper(Workload):
    method = "Test.Sleep"

    def __init__(self, seconds: float = 0.001, fail_every: int = 0) -> None:
        super().__init__()
        self.seconds = seconds
        self.fail_every = fail_every
        self.calls = 0

    async def call(self) -> int:
        self.calls += 1
        await asyncio.sleep(self.seconds)
        if self.fail_every and self.calls % self.fail_every == 0:
            raise ConnectionError("boom")
        return 1


async def test_runner_stops_at_max_requests() -> None:
    workload = Sleeper()
    started = time.perf_counter()
    rec = await closed_loop(workload, 8, Bounds(duration_s=30.0, max_requests=50))
    assert time.perf_counter() - started < 5
    assert rec.requests == 50
    assert workload.calls == 50
    assert 0 < rec.elapsed_s < 5


async def test_runner_stops_at_duration_and_counts_errors() -> None:
    workload = Sleeper(fail_every=4)
    started = time.perf_counter()
    rec = await closed_loop(workload, 4, Bounds(duration_s=0.3, max_requests=10**9, warmup_s=0.1))
    wall = time.perf_counter() - started
    assert 0.4 <= wall < 1.5
    assert 0.3 <= rec.elapsed_s < 0.6
    assert rec.errors["ConnectionError"] > 0
    assert rec.requests < workload.calls  # warm-up calls are not counted
    assert len(rec.latencies) == rec.summary().requests
    assert len(rec.answered_at) == rec.requests  # failures are answers too
    # Four callers of a 1 ms call: the window has no long silence.
    assert 0 < rec.summary().longest_gap_ms < 100


class Unimplemented(Workload):
    method = "ScoreService.SubmitScore"

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    async def open(self) -> None:
        self.channel = grpc.aio.insecure_channel(self.target)
        # A method the echo server does not have: gRPC itself answers UNIMPLEMENTED.
        self.missing = self.channel.unary_unary(
            "/leaderboard.v1.ScoreService/SubmitScore", request_serializer=None, response_deserializer=None
        )

    async def call(self) -> int:
        await self.missing(b"")
        return 1

    async def close(self) -> None:
        await self.channel.close(None)


class NotYetScenario(Scenario):
    name = "not-yet"

    async def measure(self, ctx: BenchContext, params: Params) -> list[Measured]:
        workload = Unimplemented(await ctx.echo_target())
        return [Measured("not-yet", await ctx.load("not-yet", workload, concurrency=2, processes=1))]


def bench_context(settings: Settings, duration_s: float = 0.5) -> BenchContext:
    progress = Progress(console=Console(stderr=True, quiet=True))
    return BenchContext(settings, Options(duration_s=duration_s, warmup_s=0.1), progress)


async def test_unimplemented_is_reported_not_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SCENARIOS, "not-yet", NotYetScenario)
    ctx = bench_context(load_settings({}))
    try:
        rows = await Driver(ctx, Plan(scenarios=["not-yet"])).run()
        assert len(rows) == 1
        assert rows[0].status == NOT_IMPLEMENTED
        assert rows[0].summary is None
        assert "ScoreService.SubmitScore answers UNIMPLEMENTED (issue 6)" in rows[0].detail

        async with grpc.aio.insecure_channel(await ctx.echo_target()) as channel:
            login = channel.unary_unary(
                "/leaderboard.v1.AuthService/Login", request_serializer=None, response_deserializer=None
            )
            with pytest.raises(NotImplementedYet, match=r"AuthService.Login answers UNIMPLEMENTED \(issue 4\)"):
                await require("AuthService.Login", login(b""))
    finally:
        await ctx.close()


class Logged(Scenario):
    """Measures nothing: records that it ran, with a throughput of its own."""

    log: ClassVar[list[str]] = []
    rate: ClassVar[float] = 100.0

    async def measure(self, ctx: BenchContext, params: Params) -> list[Measured]:
        self.log.append(self.name)
        recording = Recording(latencies=array("d", [0.01] * int(self.rate)), items=int(self.rate), elapsed_s=1.0)
        return [Measured(self.name, recording)]


class LoggedEcho(Logged):
    name = "echo"
    rate = 400.0


class Paired(Logged):
    name = "paired"
    baseline = "echo"


async def test_echo_baseline_runs_interleave_with_the_scenarios(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each run of the scenario is followed by an echo run: a pair shares the machine's
    # conditions of that minute, which drift on a shared VM.
    monkeypatch.setitem(SCENARIOS, "echo", LoggedEcho)
    monkeypatch.setitem(SCENARIOS, "paired", Paired)
    Logged.log.clear()
    ctx = bench_context(load_settings({}))
    try:
        rows = await Driver(ctx, Plan(scenarios=["paired"], concurrency=[8], repeat=3)).run()
    finally:
        await ctx.close()
    assert Logged.log == ["paired", "echo"] * 3
    echo, paired = rows
    assert echo.scenario == "echo" and "paired's baseline" in echo.notes[0]
    assert paired.baseline == "echo" and paired.throughput_ratio == pytest.approx(0.25)


# --- echo, end to end ------------------------------------------------------------------------


def test_echo_scenario_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "echo.json"
    code = main(["bench", "echo", "--duration", "1", "--warmup", "0.2", "--concurrency", "4", "--json", str(out)])
    assert code == 0
    document = json.loads(out.read_text())
    assert {"schema", "command", "started_at", "finished_at", "machine", "parameters", "results"} <= set(document)
    assert {"cores", "python", "versions", "loadavg_at_start", "loadavg_at_end"} <= set(document["machine"])
    assert {"grpcio", "protobuf", "redis"} <= set(document["machine"]["versions"])
    assert document["parameters"]["duration_s"] == 1
    [result] = document["results"]
    assert result["status"] == OK
    assert result["scenario"] == "echo"
    assert result["concurrency"] == 4
    summary = result["summary"]
    assert {"requests_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms", "errors"} <= set(summary)
    assert summary["requests"] > 0
    assert summary["errors"] == {}
    # Linux says how much CPU time other guests took meanwhile (a share, in percent),
    # and what each process spent per request in the window.
    assert result["steal_percent"] is None or 0 <= result["steal_percent"] <= 100
    if cpu_reading() is not None:
        assert {"echo", LOAD} <= set(result["cpu_us_per_item"])
        assert any(note.startswith("CPU per request: ") for note in result["notes"])


def test_cpu_reading_counts_this_process_as_the_load_generator() -> None:
    before = cpu_reading()
    if before is None:
        pytest.skip("no /proc here")
    started = time.process_time()
    while time.process_time() - started < 0.2:
        pass
    after = cpu_reading()
    assert after is not None
    spent = spent_by_role(before, after)
    assert spent[LOAD] >= 0.15
    cpu = per_item_us(spent, 1000)
    assert cpu[LOAD] >= 150
    assert "load generator" in describe(cpu, "request")


def test_cpu_spent_is_counted_process_by_process() -> None:
    # A process that ended between the readings takes nothing off its role (its CPU time
    # since the first reading is simply not seen); one that started counts from zero.
    before = {1: (LOAD, 5.0), 2: (LOAD, 3.0), 3: ("scores", 1.0)}
    after = {2: (LOAD, 3.5), 3: ("scores", 1.4), 4: (LOAD, 0.25)}
    assert spent_by_role(before, after) == pytest.approx({LOAD: 0.75, "scores": 0.4})


def test_steal_share_between_readings() -> None:
    assert steal_percent((10, 1000), (60, 2000)) == 5.0
    assert steal_percent(None, (60, 2000)) is None
    assert steal_percent((10, 1000), (10, 1000)) is None  # no time passed
    ticks = cpu_ticks()
    assert ticks is None or 0 <= ticks[0] <= ticks[1]


async def test_load_from_two_processes_is_merged() -> None:
    async with EchoServerProcess(free_port()) as echo:
        spec = WorkloadSpec("leaderboard.bench.scenarios.echo:EchoCall", {"target": echo.target})
        rec = await run_load(spec, concurrency=4, bounds=Bounds(duration_s=0.3, max_requests=400), processes=2)
    assert 0 < rec.requests <= 400
    assert not rec.errors
    assert isinstance(spec.build(), EchoCall)


# --- redis, against the test Redis ---------------------------------------------------------


async def test_redis_scenario_measures_and_cleans_up(settings: Settings) -> None:
    ctx = bench_context(settings, duration_s=0.3)
    scenario = RedisScenario()
    params = Params(concurrency=4, players=2000)
    try:
        notes = await scenario.prepare(ctx, params)
        measured = await scenario.measure(ctx, params)
    finally:
        await ctx.close()
    assert "B per member" in notes[0]
    assert [m.label for m in measured] == ["redis ZADD+ZREVRANK", "redis pipeline x100"]
    for m in measured:
        summary = m.recording.summary()
        assert summary.requests > 0
        assert summary.errors == {}
    assert measured[1].recording.items == 100 * measured[1].recording.summary().requests
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        leftovers = [key async for key in client.scan_iter(match=f"{settings.redis_key_prefix}bench:*")]
    finally:
        await client.aclose()
    assert leftovers == []


# --- where load may go -----------------------------------------------------------------------


def test_only_loopback_targets_are_allowed() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("10.0.0.5") and not is_loopback("example.com")
    assert remote_targets(load_settings({}, redis_url="redis://127.0.0.1:7000/0")) == []
    remote = remote_targets(load_settings({}, scores_target="10.1.2.3:50052", redis_url="redis://cache.internal:6379"))
    assert remote == ["scores at 10.1.2.3:50052", "Redis at cache.internal"]
