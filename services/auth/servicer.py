"""AuthService RPC handlers: read the request, call the domain, build the response.

Authorization is the RPC guard's (policy.py); errors are DomainErrors that
the guard maps to status + ErrorInfo.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import grpc
from google.protobuf import timestamp_pb2

from leaderboard.runtime.config import Settings
from leaderboard.runtime.context import current_principal
from leaderboard.runtime.tokens import ROLES_BY_NAME
from leaderboard.v1 import auth_pb2, auth_pb2_grpc, common_pb2
from services.auth.account_store import Account
from services.auth.accounts import Accounts
from services.auth.signing_keys import KeyRing

Context = grpc.aio.ServicerContext[Any, Any]


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def user_message(account: Account) -> common_pb2.User:
    user = common_pb2.User(
        id=account.id,
        username=account.username,
        display_name=account.display_name,
        role=common_pb2.Role.ValueType(ROLES_BY_NAME.get(account.role, common_pb2.ROLE_UNSPECIFIED)),
    )
    if account.created_at is not None:
        user.create_time.CopyFrom(_timestamp(account.created_at))
    return user


def peer_address(peer: str) -> str:
    """The client's address without its port: `ipv4:1.2.3.4:5678` -> `1.2.3.4`,
    `ipv6:[::1]:5678` -> `::1` (one per client machine, for per-address limits)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    if kind == "ipv6":
        host = rest.rpartition(":")[0] if rest.startswith("[") else rest
        return host.strip("[]").split("%", 1)[0]
    return peer or "unknown"


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, accounts: Accounts, keyring: KeyRing, settings: Settings) -> None:
        self._accounts = accounts
        self._keyring = keyring
        self._settings = settings

    async def Register(self, request: auth_pb2.RegisterRequest, context: Context) -> auth_pb2.RegisterResponse:
        account = await self._accounts.register(
            username=request.username,
            password=request.password,
            display_name=request.display_name,
            peer=peer_address(context.peer()),
        )
        return auth_pb2.RegisterResponse(user=user_message(account))

    async def Login(self, request: auth_pb2.LoginRequest, context: Context) -> auth_pb2.LoginResponse:
        result = await self._accounts.login(
            username=request.username, password=request.password, peer=peer_address(context.peer())
        )
        return auth_pb2.LoginResponse(
            access_token=result.access.token,
            refresh_token=result.refresh_token,
            user=user_message(result.account),
            access_token_expire_time=_timestamp(result.access.expires_at),
        )

    async def RefreshToken(
        self, request: auth_pb2.RefreshTokenRequest, context: Context
    ) -> auth_pb2.RefreshTokenResponse:
        refreshed = await self._accounts.refresh(request.refresh_token)
        return auth_pb2.RefreshTokenResponse(
            access_token=refreshed.access.token,
            refresh_token=refreshed.refresh_token,
            access_token_expire_time=_timestamp(refreshed.access.expires_at),
        )

    async def Logout(self, request: auth_pb2.LogoutRequest, context: Context) -> auth_pb2.LogoutResponse:
        await self._accounts.logout(request.refresh_token)
        return auth_pb2.LogoutResponse()

    async def GetCurrentUser(
        self, request: auth_pb2.GetCurrentUserRequest, context: Context
    ) -> auth_pb2.GetCurrentUserResponse:
        caller = current_principal()
        account = await self._accounts.current_user(user_id=caller.user_id, display_name=caller.display_name)
        return auth_pb2.GetCurrentUserResponse(user=user_message(account))

    async def CreateServiceAccount(
        self, request: auth_pb2.CreateServiceAccountRequest, context: Context
    ) -> auth_pb2.CreateServiceAccountResponse:
        created = await self._accounts.create_service_account(request.name)
        return auth_pb2.CreateServiceAccountResponse(
            client_id=created.client_id, client_secret=created.client_secret, user=user_message(created.account)
        )

    async def IssueServiceToken(
        self, request: auth_pb2.IssueServiceTokenRequest, context: Context
    ) -> auth_pb2.IssueServiceTokenResponse:
        issued = await self._accounts.issue_service_token(
            client_id=request.client_id, client_secret=request.client_secret
        )
        return auth_pb2.IssueServiceTokenResponse(
            access_token=issued.token, access_token_expire_time=_timestamp(issued.expires_at)
        )

    async def GetSigningKeys(
        self, request: auth_pb2.GetSigningKeysRequest, context: Context
    ) -> auth_pb2.GetSigningKeysResponse:
        keys = await self._keyring.public_keys()
        response = auth_pb2.GetSigningKeysResponse(
            issuer=self._settings.jwt_issuer, audience=self._settings.jwt_audience
        )
        for key in keys:
            message = response.keys.add(
                kid=key.kid,
                algorithm=key.algorithm,
                public_key_pem=key.public_key_pem,
                create_time=_timestamp(key.created_at),
            )
            if key.expire_at is not None:
                message.expire_time.CopyFrom(_timestamp(key.expire_at))
        return response
