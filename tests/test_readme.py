"""The README's grpcurl examples work as pasted (against this session's stack)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

from tests.conftest import Stack

README = Path(__file__).resolve().parent.parent / "README.md"
DEFAULT_PORTS = {"auth": 50051, "scores": 50052, "ranking": 50053, "reports": 50054}


def grpcurl_blocks() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)
    return [b for b in blocks if "grpcurl " in b]


def test_readme_has_grpcurl_examples() -> None:
    assert grpcurl_blocks()


async def test_readme_grpcurl_examples_run(stack: Stack) -> None:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # The operator CLI works on this session's stack, never on a `make up` running beside it.
    settings = stack.settings
    env["LEADERBOARD_POSTGRES_URL"] = settings.postgres_url
    env["LEADERBOARD_REDIS_URL"] = settings.redis_url
    env["LEADERBOARD_REDIS_KEY_PREFIX"] = settings.redis_key_prefix
    env["LEADERBOARD_DATA_DIR"] = str(settings.data_dir)
    for block in grpcurl_blocks():
        script = block.replace(".venv/bin/leaderboard ", f"{sys.executable} -m leaderboard.cli.main ")
        for name, default in DEFAULT_PORTS.items():
            script = script.replace(f"localhost:{default}", stack.settings.target(name))
        # Async: the services answering grpcurl run on this very event loop.
        proc = await asyncio.create_subprocess_exec(
            "bash", "-euo", "pipefail", "-c", script, env=env, cwd=README.parent, stdout=PIPE, stderr=PIPE
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, f"{block}\n--- stdout\n{stdout.decode()}\n--- stderr\n{stderr.decode()}"
        if "ScoreService/SubmitScore" in block:
            check_submission_example(stdout.decode())


def json_documents(text: str) -> list[Any]:
    """The JSON documents grpcurl printed one after another."""
    decoder, documents, pos = json.JSONDecoder(), [], 0
    while (pos := _skip_space(text, pos)) < len(text):
        document, pos = decoder.raw_decode(text, pos)
        documents.append(document)
    return documents


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def check_submission_example(output: str) -> None:
    """What the README says of its submission example: ranked at once, the replay
    answered with the first answer, and one submission in the history."""
    first, replay, history = json_documents(output)
    assert first["entry"]["rank"] == "1" and first["improved"], first
    assert replay == first
    assert [s["id"] for s in history["submissions"]] == [first["submission"]["id"]]
