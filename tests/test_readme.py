"""The README's grpcurl examples work as pasted (against this session's stack)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from asyncio.subprocess import PIPE
from pathlib import Path

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
    for block in grpcurl_blocks():
        script = block
        for name, default in DEFAULT_PORTS.items():
            script = script.replace(f"localhost:{default}", stack.settings.target(name))
        # Async: the services answering grpcurl run on this very event loop.
        proc = await asyncio.create_subprocess_exec(
            "bash", "-euo", "pipefail", "-c", script, env=env, stdout=PIPE, stderr=PIPE
        )
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, f"{block}\n--- stdout\n{stdout.decode()}\n--- stderr\n{stderr.decode()}"
