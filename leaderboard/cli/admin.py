"""`leaderboard admin ...`: operator tasks run straight against the database.

From the repo root they find the stack `make up` runs with no flags: when
LEADERBOARD_POSTGRES_URL is unset they read the URLs `leaderboard up` wrote to
`<data dir>/endpoints.env`.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from leaderboard.cli.stack_state import state_path, with_running_stack
from leaderboard.runtime.config import Settings
from leaderboard.runtime.errors import DomainError

T = TypeVar("T")


class AdminError(Exception):
    """A problem to report in one line (exit code 1)."""


def stack_settings(settings: Settings) -> Settings:
    """Settings pointing at the running stack: the environment first, else endpoints.env."""
    settings = with_running_stack(settings)
    if not settings.postgres_url:
        raise AdminError(
            f"LEADERBOARD_POSTGRES_URL is not set and {state_path(settings)} does not exist: "
            "start the stack with `make up` (from this directory) or set LEADERBOARD_POSTGRES_URL"
        )
    return settings


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except DomainError as exc:
        raise AdminError(exc.message) from None


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        # One line; only the line break is dropped (spaces belong to the password).
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise AdminError("no terminal to ask for the password: pass --password-stdin and pipe it in")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise AdminError("the passwords differ")
    return first


def _create_admin(args: argparse.Namespace, settings: Settings) -> int:
    from services.auth.bootstrap import create_admin

    password = _read_password(args)
    user_id, created = _run(create_admin(settings, args.username, password, args.display_name))
    name = args.username.lower()
    if created:
        print(f"created admin {name} (user id {user_id})")
    else:
        print(f"admin {name} already exists (user id {user_id}); its password is unchanged")
    return 0


def _create_service_account(args: argparse.Namespace, settings: Settings) -> int:
    from services.auth.bootstrap import create_service_account

    created = _run(create_service_account(settings, args.name))
    print(f"client_id={created.client_id}")
    print(f"client_secret={created.client_secret}")
    print(
        "Store the secret now: it is not shown again. Exchange both for a ROLE_SERVER token "
        "with AuthService.IssueServiceToken.",
        file=sys.stderr,
    )
    return 0


def _rotate_signing_key(args: argparse.Namespace, settings: Settings) -> int:
    from services.auth.bootstrap import rotate_signing_key

    rotation = _run(rotate_signing_key(settings))
    print(f"new signing key: {rotation.new_kid}")
    for kid in rotation.retired_kids:
        print(f"retired {kid}: its tokens verify until {rotation.retired_expire_at.isoformat()}")
    return 0


def _lock(locked: bool) -> Callable[[argparse.Namespace, Settings], int]:
    def handler(args: argparse.Namespace, settings: Settings) -> int:
        from services.auth.bootstrap import set_locked

        account = _run(set_locked(settings, args.username, locked))
        print(f"{account.username}: {'locked' if locked else 'unlocked'}")
        return 0

    return handler


def _with_stack(
    handler: Callable[[argparse.Namespace, Settings], int],
) -> Callable[[argparse.Namespace, Settings], int]:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        try:
            return handler(args, stack_settings(settings))
        except AdminError as exc:
            print(f"leaderboard admin: {exc}", file=sys.stderr)
            return 1

    return run


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = sub.add_parser("admin", help="operator tasks on the database: admins, service accounts, keys")
    commands = admin.add_subparsers(dest="admin_command", required=True)

    create_admin = commands.add_parser(
        "create-admin", help="create an admin account (idempotent: an existing admin is kept as is)"
    )
    create_admin.add_argument("--username", required=True)
    create_admin.add_argument("--display-name", default=None, help="defaults to the username")
    create_admin.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input (one line)"
    )
    create_admin.set_defaults(handler=_with_stack(_create_admin))

    service_account = commands.add_parser(
        "create-service-account", help="create a game-server account; prints its client id and secret"
    )
    service_account.add_argument("--name", required=True, help="name of the game server or fleet")
    service_account.set_defaults(handler=_with_stack(_create_service_account))

    rotate = commands.add_parser(
        "rotate-signing-key", help="sign new tokens with a new key; old tokens stay valid until they expire"
    )
    rotate.set_defaults(handler=_with_stack(_rotate_signing_key))

    for name, locked in (("lock-user", True), ("unlock-user", False)):
        lock = commands.add_parser(
            name, help=f"{name.split('-')[0]} an account (a locked one cannot log in or refresh)"
        )
        lock.add_argument("--username", required=True)
        lock.set_defaults(handler=_with_stack(_lock(locked)))
