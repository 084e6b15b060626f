"""Regenerate docs/configuration.md from the config schema; `--check` fails when it drifted."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from leaderboard.runtime.config import settings_reference

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "configuration.md"

HEADER = """# Configuration

Every setting is an environment variable with the prefix `LEADERBOARD_`. A bad
value stops a service at start with one line naming the variable; an unknown
`LEADERBOARD_*` variable is refused too (typos do not pass silently).

This file is generated from `leaderboard/runtime/config.py` by `make docs`
(`make test` fails when it is out of date). `leaderboard config` prints the same table.

"""


def render() -> str:
    return HEADER + settings_reference()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != text:
            print("docs/configuration.md is stale; run `make docs`", file=sys.stderr)
            return 1
        return 0
    TARGET.parent.mkdir(exist_ok=True)
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
