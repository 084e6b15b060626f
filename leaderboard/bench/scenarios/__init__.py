"""The scenarios, in the order `leaderboard bench all` runs them (the Redis baseline first;
echo runs beside each scenario it is the baseline of, see driver.py)."""

from __future__ import annotations

from leaderboard.bench import catalog
from leaderboard.bench.scenarios.base import Measured, Params, Scenario
from leaderboard.bench.scenarios.batch_submit import BatchSubmitScenario
from leaderboard.bench.scenarios.echo import EchoScenario
from leaderboard.bench.scenarios.login import LoginScenario
from leaderboard.bench.scenarios.rank import RankScenario
from leaderboard.bench.scenarios.redis import RedisScenario
from leaderboard.bench.scenarios.report import ReportScenario
from leaderboard.bench.scenarios.stream import StreamScenario
from leaderboard.bench.scenarios.submit import SubmitScenario
from leaderboard.bench.scenarios.top import TopScenario

SCENARIOS: dict[str, type[Scenario]] = {
    cls.name: cls
    for cls in (
        EchoScenario,
        RedisScenario,
        SubmitScenario,
        BatchSubmitScenario,
        RankScenario,
        TopScenario,
        StreamScenario,
        ReportScenario,
        LoginScenario,
    )
}

if list(SCENARIOS) != list(catalog.SCENARIOS):
    raise RuntimeError("leaderboard.bench.catalog and the scenario classes disagree")

__all__ = ["SCENARIOS", "Measured", "Params", "Scenario"]
