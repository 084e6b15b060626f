"""The first answers of one micro-batch, stored as one value (AIP-155 replays).

One row per batch instead of an UPDATE per submission: the answers are
serialized SubmitScoreResponse messages (without the submission, which the
history row holds) concatenated, each behind a 4-byte length; position i (from
1, the submission's `batch_position`) is the i-th. A position without an
answer (a duplicate in that batch, or ranking did not answer) is empty.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

_LENGTH = struct.Struct(">I")
_NONE = 0xFFFFFFFF


def pack(answers: Sequence[bytes | None]) -> bytes:
    parts: list[bytes] = []
    for answer in answers:
        if answer is None:
            parts.append(_LENGTH.pack(_NONE))
        else:
            parts.append(_LENGTH.pack(len(answer)))
            parts.append(answer)
    return b"".join(parts)


def answer_at(packed: bytes, position: int) -> bytes | None:
    """The answer at `position` (1-based); None when there is none."""
    offset = 0
    for _ in range(position - 1):
        if offset + 4 > len(packed):
            return None
        (length,) = _LENGTH.unpack_from(packed, offset)
        offset += 4 + (0 if length == _NONE else length)
    if offset + 4 > len(packed):
        return None
    (length,) = _LENGTH.unpack_from(packed, offset)
    if length == _NONE:
        return None
    return packed[offset + 4 : offset + 4 + length]
