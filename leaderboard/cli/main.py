"""`leaderboard` command: up, serve, migrate, config and the subcommands of later tools."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from leaderboard.runtime.config import ConfigError, Settings, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from leaderboard.cli.workers import serve_workers

    return serve_workers(args.service, settings, workers=args.workers, worker_index=args.worker_index)


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from leaderboard.runtime.migrations import SERVICES, upgrade

    if not settings.postgres_url:
        print("LEADERBOARD_POSTGRES_URL is not set (make up sets it for the embedded server)", file=sys.stderr)
        return 2
    upgrade(settings.postgres_url, tuple(args.service) if args.service else SERVICES)
    print("migrations applied")
    return 0


def _up(args: argparse.Namespace, settings: Settings) -> int:
    from leaderboard.cli.up import run_up

    return run_up(settings, workers=args.workers)


def _config(args: argparse.Namespace, settings: Settings) -> int:
    from leaderboard.runtime.config import settings_reference

    print(settings_reference(), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leaderboard", description="Real-time leaderboard backend for games.")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start embedded stores (unless URLs are set), migrate, run all four services")
    up.add_argument("--workers", type=int, default=1, help="processes per service")
    up.set_defaults(handler=_up)

    serve = sub.add_parser("serve", help="run one service")
    serve.add_argument("service", choices=["auth", "scores", "ranking", "reports"])
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    serve.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    serve.set_defaults(handler=_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("service", nargs="*", help="only these services' schemas")
    migrate.set_defaults(handler=_migrate)

    config = sub.add_parser("config", help="print the configuration reference (Markdown)")
    config.set_defaults(handler=_config)

    for register in _extensions():
        register(sub)
    return parser


def _extensions() -> list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]]:
    """Subcommands that live in their own modules (admin, bench, demo, watch)."""
    import importlib

    found = []
    for name in ("admin", "bench", "demo", "watch"):
        try:
            module = importlib.import_module(f"leaderboard.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"leaderboard.cli.{name}":
                raise
            continue
        found.append(module.register)
    return found


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"leaderboard: configuration error: {exc}", file=sys.stderr)
        return 2
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
