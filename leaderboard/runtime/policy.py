"""Who may call what: the one declarative table of per-RPC authorization.

The RPC guard (rpc_guard.py) checks it before any handler runs (so permission is
checked before existence). A method of ours missing from the table is denied.
"""

from __future__ import annotations

from leaderboard.v1 import common_pb2

PLAYER = common_pb2.ROLE_PLAYER
SERVER = common_pb2.ROLE_SERVER
ADMIN = common_pb2.ROLE_ADMIN

PUBLIC: frozenset[int] = frozenset()  # no token needed
ANY_USER = frozenset({PLAYER, SERVER, ADMIN})
SERVERS = frozenset({SERVER, ADMIN})
ADMINS = frozenset({ADMIN})

_P = "/leaderboard.v1."

POLICY: dict[str, frozenset[int]] = {
    # AuthService
    _P + "AuthService/Register": PUBLIC,
    _P + "AuthService/Login": PUBLIC,
    _P + "AuthService/RefreshToken": PUBLIC,
    _P + "AuthService/Logout": PUBLIC,
    _P + "AuthService/GetSigningKeys": PUBLIC,
    _P + "AuthService/IssueServiceToken": PUBLIC,
    _P + "AuthService/GetCurrentUser": ANY_USER,
    _P + "AuthService/CreateServiceAccount": ADMINS,
    # ScoreService
    _P + "ScoreService/SubmitScore": ANY_USER,
    _P + "ScoreService/BatchSubmitScores": SERVERS,
    _P + "ScoreService/ListScoreHistory": ANY_USER,
    _P + "ScoreService/StreamScoreEvents": SERVERS,
    # RankingService
    _P + "RankingService/CreateLeaderboard": ADMINS,
    _P + "RankingService/UpdateLeaderboard": ADMINS,
    _P + "RankingService/DeleteLeaderboard": ADMINS,
    _P + "RankingService/GetLeaderboard": ANY_USER,
    _P + "RankingService/ListLeaderboards": ANY_USER,
    _P + "RankingService/ListTopEntries": ANY_USER,
    _P + "RankingService/GetUserRank": ANY_USER,
    _P + "RankingService/ListEntriesAroundUser": ANY_USER,
    _P + "RankingService/ListEntriesForUsers": ANY_USER,
    _P + "RankingService/SubscribeRankUpdates": ANY_USER,
    _P + "RankingService/ApplyScores": SERVERS,
    _P + "RankingService/RebuildLeaderboard": ADMINS,
    _P + "RankingService/SetUserHidden": ADMINS,
    # ReportService
    _P + "ReportService/GenerateTopPlayersReport": ADMINS,
    _P + "ReportService/GetReport": ADMINS,
    _P + "ReportService/ListReports": ADMINS,
    _P + "ReportService/CreateReportSchedule": ADMINS,
    _P + "ReportService/ListReportSchedules": ADMINS,
    _P + "ReportService/DeleteReportSchedule": ADMINS,
}


def is_ours(method: str) -> bool:
    return method.startswith(_P)
