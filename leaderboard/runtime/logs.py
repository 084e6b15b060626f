"""Structured logging: one JSON object per line with the request id."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from leaderboard.runtime.context import request_id_var

# Libraries' loggers that write a DEBUG line per RPC: held at INFO when the service logs at
# DEBUG. grpc's Cython layer logs "Loaded running loop" about once per call, which at 64
# callers was ~28 lines per batch line of ours and most of DEBUG's cost.
_CHATTY_AT_DEBUG = ("grpc._cython.cygrpc",)

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id_var.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


def configure_logging(service: str, level: str = "INFO", *, json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _CHATTY_AT_DEBUG:
        logging.getLogger(name).setLevel(logging.INFO if root.level < logging.INFO else logging.NOTSET)
    logging.Formatter.converter = time.gmtime
