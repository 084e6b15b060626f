"""Identifier helpers: valid UUID text of the right version, without uuid4()."""

from __future__ import annotations

import random
import time
import uuid

from leaderboard.runtime.ids import canonical_uuid, random_hex, random_uuid4, random_uuid4s, uuid7, uuid7s, uuid_text


def test_random_uuid4_is_a_version_4_uuid_in_canonical_text() -> None:
    rng = random.Random(7)
    ids = [random_uuid4(rng) for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text


def test_random_uuid4s_are_version_4_uuids_in_canonical_text() -> None:
    ids = random_uuid4s(2000, random.Random(7))
    assert len(set(ids)) == len(ids) == 2000
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text
    assert random_uuid4s(0) == []


def test_uuid7_carries_the_millisecond_and_sorts_by_time() -> None:
    before = time.time_ns() // 1_000_000
    first = uuid7()
    time.sleep(0.002)
    second = uuid7()
    after = time.time_ns() // 1_000_000
    for text in (first, second):
        parsed = uuid.UUID(text)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and str(parsed) == text
        assert before <= parsed.int >> 80 <= after
    assert first < second


def test_uuid_text_and_canonical_form() -> None:
    value = uuid.uuid4()
    assert uuid_text(value.int) == str(value)
    assert canonical_uuid(str(value)) == str(value)
    assert canonical_uuid(value.hex.upper()) == str(value)  # other spellings are normalised
    assert canonical_uuid("{" + str(value) + "}") == str(value)
    assert canonical_uuid("not-a-uuid") is None
    assert len(random_hex()) == 32 and int(random_hex(), 16) >= 0


def test_uuid7_within_one_millisecond_are_valid_and_distinct() -> None:
    ids = [uuid7() for _ in range(2000)]  # many share a millisecond (and its cached prefix)
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and str(parsed) == text


def test_uuid7s_share_their_millisecond_and_are_valid_and_distinct() -> None:
    ms = 1_764_650_000_123
    ids = uuid7s(5000, ms)
    assert len(set(ids)) == len(ids) == 5000
    assert ids == sorted(ids)  # a batch's rows append at the index's right edge
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122 and str(parsed) == text
        assert parsed.int >> 80 == ms
    assert uuid7s(0) == []
    (now,) = uuid7s(1)
    assert abs((uuid.UUID(now).int >> 80) - time.time_ns() // 1_000_000) < 5_000
