"""Runs the benchmark matrix: scenarios x board sizes x concurrencies x repeats.

Each point runs `repeat` times and the run with the median throughput is
quoted. A scenario with a baseline gets it measured in the same invocation
(echo at the same concurrency, or the Redis pipeline's ceiling) and a ratio.
A scenario whose RPC answers UNIMPLEMENTED yields a "not implemented yet" row.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from leaderboard.bench.availability import NotImplementedYet
from leaderboard.bench.context import BenchContext
from leaderboard.bench.process_cpu import describe, per_item_us
from leaderboard.bench.report import FAILED, NOT_IMPLEMENTED, OK, Row
from leaderboard.bench.scenarios import SCENARIOS, Measured, Params, Scenario
from leaderboard.bench.scenarios.redis import PIPELINE_DEPTH, RedisScenario
from leaderboard.bench.stats import Summary, median_run
from leaderboard.bench.steal import cpu_ticks, steal_percent

log = logging.getLogger("leaderboard.bench")

DEFAULT_PLAYERS = 100_000


@dataclass(frozen=True)
class Plan:
    scenarios: list[str]
    concurrency: list[int] | None = None  # None: each scenario's default
    players: list[int] | None = None  # None: DEFAULT_PLAYERS, or the scenario's size under `all`
    processes: int = 1
    repeat: int = 1
    under_all: bool = False


class Driver:
    def __init__(self, ctx: BenchContext, plan: Plan, *, on_row: Callable[[Row], None] | None = None) -> None:
        self.ctx = ctx
        self.plan = plan
        self.rows: list[Row] = []
        self.on_row = on_row
        self._instances: dict[str, Scenario] = {}
        # The Redis pipeline's ceiling, measured once per invocation (echo is measured
        # beside each scenario instead, see _measure).
        self._redis_baseline: Summary | None = None

    def scenario(self, name: str) -> Scenario:
        if name not in self._instances:
            self._instances[name] = SCENARIOS[name]()
        return self._instances[name]

    def _players(self, scenario: Scenario) -> list[int]:
        if self.plan.players:
            return self.plan.players
        if self.plan.under_all and scenario.players_under_all:
            return [scenario.players_under_all]
        return [DEFAULT_PLAYERS]

    def _concurrency(self, scenario: Scenario) -> list[int]:
        if self.plan.concurrency:
            return self.plan.concurrency
        if self.plan.under_all and scenario.concurrency_under_all:
            return list(scenario.concurrency_under_all)
        return list(scenario.default_concurrency)

    def _add(self, row: Row) -> None:
        self.rows.append(row)
        if self.on_row is not None:
            self.on_row(row)

    async def run(self) -> list[Row]:
        for name in self.plan.scenarios:
            scenario = self.scenario(name)
            for players in self._players(scenario):
                await self._run_size(scenario, players)
        return self.rows

    async def _run_size(self, scenario: Scenario, players: int) -> None:
        concurrencies = self._concurrency(scenario)
        processes = 1 if scenario.single_process else self.plan.processes
        shown_players = players if scenario.uses_players else None

        def stub(status: str, detail: str, concurrency: int | None = None) -> Row:
            return Row(scenario.name, scenario.name, status, concurrency, processes, shown_players, detail=detail)

        try:
            notes = await scenario.prepare(self.ctx, Params(concurrencies[0], players, processes))
        except NotImplementedYet as exc:
            self._add(stub(NOT_IMPLEMENTED, str(exc)))
            return
        except Exception as exc:
            log.debug("prepare failed", exc_info=exc)
            self._add(stub(FAILED, f"setup: {type(exc).__name__}: {exc}"))
            return
        for concurrency in concurrencies:
            params = Params(concurrency, players, processes)
            try:
                runs, echo_runs = await self._measure(scenario, params)
            except NotImplementedYet as exc:
                self._add(stub(NOT_IMPLEMENTED, str(exc), concurrency))
                return  # other concurrencies would say the same
            except Exception as exc:
                log.debug("measure failed", exc_info=exc)
                self._add(stub(FAILED, f"{type(exc).__name__}: {exc}", concurrency))
                continue
            rows = self._median_rows(scenario, params, runs, notes)
            if scenario.name == "redis":
                for row in rows:
                    if row.label.endswith(f"x{PIPELINE_DEPTH}") and row.summary is not None:
                        self._redis_baseline = self._redis_baseline or row.summary
            if echo_runs:
                self._attach_echo(scenario, params, echo_runs, rows)
            elif scenario.baseline is not None:
                await self._attach_baseline(scenario.baseline, params, rows)
            for row in rows:
                self._add(row)
            notes = []  # setup notes once per board size

    def _median_rows(
        self, scenario: Scenario, params: Params, runs: list[list[Measured]], notes: list[str]
    ) -> list[Row]:
        rows: list[Row] = []
        labels = [m.label for m in runs[0]]
        for label in labels:
            measured = [m for run in runs for m in run if m.label == label]
            summaries = [m.recording.summary() for m in measured]
            best = median_run(summaries)
            chosen = measured[summaries.index(best)]
            cpu = per_item_us(chosen.recording.cpu_s, best.items)
            unit = "request" if chosen.unit == "req" else chosen.unit.removesuffix("s")
            rows.append(
                Row(
                    scenario=scenario.name,
                    label=label,
                    status=OK,
                    concurrency=params.concurrency,
                    processes=params.processes,
                    players=params.players if scenario.uses_players else None,
                    unit=chosen.unit,
                    summary=best,
                    runs_per_s=[s.items_per_s for s in summaries],
                    notes=(notes if label == labels[0] else [])
                    + chosen.notes
                    + ([describe(cpu, unit)] if cpu else [])
                    + ([_gap_note(best)] if best.longest_gap_ms else []),
                    steal_percent=chosen.steal_percent,
                    cpu_us_per_item=cpu,
                )
            )
        return rows

    async def _measure(self, scenario: Scenario, params: Params) -> tuple[list[list[Measured]], list[list[Measured]]]:
        """The scenario's runs and, when echo is its baseline, an echo run right after each
        one: a pair shares the machine of that minute (on a shared VM the CPU time other
        guests take drifts by tens of percent), so their ratio holds where separate
        series of runs would not."""
        echo = self.scenario("echo") if scenario.baseline == "echo" else None
        runs: list[list[Measured]] = []
        echo_runs: list[list[Measured]] = []
        for _ in range(self.plan.repeat):
            runs.append(await self._timed(scenario.measure(self.ctx, params)))
            if echo is not None:
                echo_runs.append(await self._timed(echo.measure(self.ctx, params)))
        return runs, echo_runs

    def _attach_echo(
        self, scenario: Scenario, params: Params, echo_runs: list[list[Measured]], rows: list[Row]
    ) -> None:
        echo_rows = self._median_rows(self.scenario("echo"), params, echo_runs, [])
        for row in echo_rows:
            row.notes.append(f"{scenario.name}'s baseline: each run right after one of {scenario.name}'s")
            self._add(row)
        for row in rows:
            row.baseline = "echo"
            row.baseline_summary = echo_rows[0].summary

    @staticmethod
    async def _timed(measuring: Awaitable[list[Measured]]) -> list[Measured]:
        """A run's figures, each with the share of CPU time stolen from the machine meanwhile."""
        before = cpu_ticks()
        measured = await measuring
        stolen = steal_percent(before, cpu_ticks())
        for m in measured:
            m.steal_percent = stolen
        return measured

    async def _attach_baseline(self, kind: str, params: Params, rows: list[Row]) -> None:
        try:
            summary, name = await self._baseline(kind, params)
        except Exception as exc:
            for row in rows:
                row.notes.append(f"baseline {kind} not measured: {type(exc).__name__}: {exc}")
            return
        for row in rows:
            row.baseline = name
            row.baseline_summary = summary

    async def _baseline(self, kind: str, params: Params) -> tuple[Summary, str]:
        if kind == "redis":
            if self._redis_baseline is None:
                redis = self.scenario("redis")
                assert isinstance(redis, RedisScenario)
                at = Params(redis.default_concurrency[0], params.players, params.processes)
                runs = [
                    await self._timed(_one(redis.measure_depth(self.ctx, at, PIPELINE_DEPTH)))
                    for _ in range(self.plan.repeat)
                ]
                rows = self._median_rows(redis, at, runs, [])
                for row in rows:
                    row.notes.append("measured as a baseline")
                    self._add(row)
                assert rows[0].summary is not None
                self._redis_baseline = rows[0].summary
            return self._redis_baseline, f"redis x{PIPELINE_DEPTH}"
        raise ValueError(f"unknown baseline {kind!r}")


def _gap_note(summary: Summary) -> str:
    # Calls in flight are answered every few ms at most; a longer silence is a stall (a
    # collector pause, a fork, a slow disk) that the percentiles may or may not show.
    return f"longest time without an answer: {summary.longest_gap_ms:.0f} ms (p99 {summary.p99_ms:.0f} ms)"


async def _one(measuring: Awaitable[Measured]) -> list[Measured]:
    return [await measuring]
