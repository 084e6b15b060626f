"""Server CPU per call of a bare grpc.aio echo server, registered one way or another.

    .venv/bin/python -m benchmarks.grpc_server_variants                  # generic vs 9 and 18 registered
    .venv/bin/python -m benchmarks.grpc_server_variants generic legacy-io --rounds 4

Each variant is an echo server in a process of its own (uvloop, as the services
run); one client process sends --concurrency calls in a closed loop to each in
turn, --seconds per run after a second of warm-up, for --rounds alternating
rounds, and prints the calls/s and the server's CPU time per call (from /proc).
Alternating runs share the machine of their minute, whose speed moves by tens of
percent on a shared VM: compare within a round.

Variants:
- `generic`: the echo method served by a generic handler only (as every service
  of ours since generic_handlers.py, and the benchmarks' echo server);
- `registered:N`: the same plus N registered methods (the echo one among them),
  as grpc's generated `add_*Servicer_to_server` functions register them;
- `legacy-io`: `generic`, with grpc's EventEngine turned off by its
  GRPC_EXPERIMENTS testing switches.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Sequence

import grpc

from leaderboard.bench.process_cpu import processes
from leaderboard.runtime.process import run

SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Echo"
LEGACY_IO = "-event_engine_client,-event_engine_listener,-event_engine_for_all_other_endpoints"


async def _echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


async def serve(port: int, registered: int) -> None:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)], maximum_concurrent_rpcs=None)
    handlers = {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}
    handlers.update({f"Other{i}": grpc.unary_unary_rpc_method_handler(_echo) for i in range(registered - 1)})
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    if registered:
        server.add_registered_method_handlers(SERVICE, handlers)  # type: ignore[attr-defined]
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


def _start(variant: str, port: int) -> subprocess.Popen[str]:
    env = dict(os.environ)
    registered = 0
    if variant.startswith("registered:"):
        registered = int(variant.split(":", 1)[1])
    elif variant == "legacy-io":
        env["GRPC_EXPERIMENTS"] = LEGACY_IO
    elif variant != "generic":
        raise SystemExit(f"unknown variant {variant!r}")
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.grpc_server_variants",
        "--serve",
        str(port),
        "--registered",
        str(registered),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit(f"{variant}: the server did not start")
    return proc


def _cpu_seconds(pid: int) -> float:
    return processes()[pid][2]


async def _measure(port: int, pid: int, seconds: float, concurrency: int) -> tuple[float, float]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        echo = channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)
        payload, done, stop = b"x" * 100, 0, False

        async def caller() -> None:
            nonlocal done
            while not stop:
                await echo(payload, timeout=10)
                done += 1

        callers = [asyncio.create_task(caller()) for _ in range(concurrency)]
        await asyncio.sleep(1.0)
        done, cpu, started = 0, _cpu_seconds(pid), time.perf_counter()
        await asyncio.sleep(seconds)
        calls, used, elapsed = done, _cpu_seconds(pid) - cpu, time.perf_counter() - started
        stop = True
        await asyncio.gather(*callers)
    return calls / elapsed, used / calls * 1e6


async def compare(variants: Sequence[str], rounds: int, seconds: float, concurrency: int) -> None:
    servers = {v: (50_900 + i, _start(v, 50_900 + i)) for i, v in enumerate(variants)}
    try:
        results: dict[str, list[float]] = {v: [] for v in variants}
        for round_ in range(1, rounds + 1):
            for variant, (port, proc) in servers.items():
                rate, us = await _measure(port, proc.pid, seconds, concurrency)
                results[variant].append(us)
                print(
                    f"round {round_}  {variant:<14} {rate:7,.0f} calls/s  {us:6.1f} µs of server CPU a call", flush=True
                )
        for variant, figures in results.items():
            runs = ", ".join(f"{f:.0f}" for f in figures)
            print(f"{variant:<14} mean {sum(figures) / len(figures):6.1f} µs a call ({runs})")
    finally:
        for _, proc in servers.values():
            proc.terminate()
            proc.wait()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.grpc_server_variants", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("variants", nargs="*", default=["generic", "registered:9", "registered:18"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per run")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--registered", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        run(serve(args.serve, args.registered))
        return
    run(compare(args.variants, args.rounds, args.seconds, args.concurrency))


if __name__ == "__main__":
    main()
