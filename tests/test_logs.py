"""Structured logs: one JSON object per line, and DEBUG without libraries' per-call chatter."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from leaderboard.runtime.context import request_id_var
from leaderboard.runtime.logs import configure_logging

CYGRPC = "grpc._cython.cygrpc"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level, cygrpc_level = root.handlers[:], root.level, logging.getLogger(CYGRPC).level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger(CYGRPC).setLevel(cygrpc_level)


def _lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_lines_are_json_with_service_request_id_and_extras(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("scores", "INFO")
    token = request_id_var.set("req-1")
    try:
        logging.getLogger("leaderboard.test").info("stored %d", 3, extra={"batch": 7})
    finally:
        request_id_var.reset(token)
    (line,) = _lines(capsys.readouterr().err)
    assert line["service"] == "scores" and line["level"] == "INFO" and line["logger"] == "leaderboard.test"
    assert line["msg"] == "stored 3" and line["request_id"] == "req-1" and line["batch"] == 7


def test_debug_keeps_grpcs_per_call_lines_out(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("scores", "DEBUG")
    logging.getLogger("leaderboard.test").debug("ours")
    logging.getLogger(CYGRPC).debug("[_cygrpc] Loaded running loop: id(loop)=1")
    logging.getLogger(CYGRPC).info("grpc says something worth reading")
    assert [line["msg"] for line in _lines(capsys.readouterr().err)] == ["ours", "grpc says something worth reading"]


def test_a_quieter_level_holds_for_grpc_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("scores", "WARNING")
    logging.getLogger(CYGRPC).info("not shown")
    logging.getLogger(CYGRPC).warning("shown")
    assert [line["msg"] for line in _lines(capsys.readouterr().err)] == ["shown"]
