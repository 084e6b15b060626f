"""Catalog rules and the per-process cache (pure: no servers)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from leaderboard.runtime.errors import InvalidArgument, NotFound
from services.ranking.catalog import (
    Board,
    CatalogCache,
    Policy,
    SortOrder,
    apply_update,
    parse_windows,
    validate_board,
)
from services.ranking.page_tokens import CatalogToken, TopToken
from services.ranking.windows import Window

BOARD = Board("kills", "game", "Kills", SortOrder.DESCENDING, Policy.BEST, None, 100, False, (), 0.0, 0)
GLOBAL = Board("global", "", "Global", SortOrder.DESCENDING, Policy.SUM, None, None, True, (), 0.0, 0)


def test_update_mask_changes_only_named_fields() -> None:
    change = dataclasses.replace(BOARD, display_name="Frags", max_score=None, windows=(Window.DAILY,))
    updated = apply_update(BOARD, change, ["display_name"])
    assert (updated.display_name, updated.max_score, updated.windows) == ("Frags", 100, ())
    everything = apply_update(BOARD, change, [])
    assert (everything.display_name, everything.max_score, everything.windows) == ("Frags", None, (Window.DAILY,))


@pytest.mark.parametrize(
    ("change", "paths"),
    [
        ({"sort_order": SortOrder.ASCENDING}, ["sort_order"]),
        ({"policy": Policy.SUM}, ["update_policy"]),
        ({"policy": Policy.SUM}, []),  # an empty mask does not sneak it through
        ({}, ["create_time"]),
        ({}, ["no_such_field"]),
        ({"min_score": 500}, ["min_score"]),  # above max_score 100
    ],
)
def test_update_mask_refusals(change: dict[str, object], paths: list[str]) -> None:
    with pytest.raises(InvalidArgument):
        apply_update(BOARD, dataclasses.replace(BOARD, **change), paths)  # type: ignore[arg-type]


def test_the_global_board_only_renames() -> None:
    assert apply_update(GLOBAL, dataclasses.replace(GLOBAL, display_name="World"), []).display_name == "World"
    for changed, path in (
        (dataclasses.replace(GLOBAL, global_weight=1.0), "global_weight"),
        (dataclasses.replace(GLOBAL, windows=(Window.DAILY,)), "windows"),
    ):
        with pytest.raises(InvalidArgument):
            apply_update(GLOBAL, changed, [path])
    # An empty mask means "every field that may change": for global only the name.
    kept = apply_update(GLOBAL, dataclasses.replace(GLOBAL, windows=(Window.DAILY,), authoritative=False), [])
    assert (kept.windows, kept.authoritative) == ((), True)


def test_definition_defaults_and_window_parsing() -> None:
    assert validate_board(dataclasses.replace(BOARD, display_name=" ")).display_name == "kills"
    assert parse_windows([Window.WEEKLY, Window.ALL_TIME, Window.DAILY, Window.WEEKLY], "w") == (
        Window.DAILY,
        Window.WEEKLY,
    )
    with pytest.raises(InvalidArgument):
        parse_windows([0], "w")
    with pytest.raises(InvalidArgument):
        validate_board(dataclasses.replace(BOARD, global_weight=float("nan")))


async def test_cache_ttls_and_single_flight() -> None:
    now = [0.0]
    stored: dict[str, Board] = {}
    loads: list[str] = []

    async def load(board_id: str) -> Board | None:
        loads.append(board_id)
        await asyncio.sleep(0)
        return stored.get(board_id)

    cache = CatalogCache(load, ttl_seconds=5, clock=lambda: now[0])
    with pytest.raises(NotFound):
        await cache.get("kills")
    stored["kills"] = BOARD
    assert await cache.find("kills") is None  # the miss is remembered, briefly
    now[0] += 1.1
    assert await cache.get("kills") == BOARD
    renamed = dataclasses.replace(BOARD, display_name="Frags")
    stored["kills"] = renamed
    now[0] += 4
    assert (await cache.get("kills")).display_name == "Kills"  # within the TTL
    now[0] += 1.1
    results = await asyncio.gather(*(cache.get("kills") for _ in range(10)))
    assert {b.display_name for b in results} == {"Frags"}
    assert loads == ["kills", "kills", "kills"]  # ten concurrent misses, one load


def test_page_tokens_round_trip_and_refuse_garbage() -> None:
    token = TopToken("kills", 2, "d20261129", 3, 99, -5, bytes(22), None, 4, 7, 123)
    assert TopToken.decode(token.encode()) == token
    assert CatalogToken.decode(CatalogToken("b", "g").encode()) == CatalogToken("b", "g")
    forged = TopToken("kills", 2, "r:a", 3, 99, -5, bytes(22), None, 4, 7, 123).encode()
    for bad in ("", "!!!", "AAAA", forged):
        with pytest.raises(InvalidArgument):
            TopToken.decode(bad)
