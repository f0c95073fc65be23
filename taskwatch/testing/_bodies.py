"""What the documented task API sends besides a task: its error bodies, and its JSON."""

from __future__ import annotations

import json
from datetime import datetime
from http import HTTPStatus

JSON_CT = "application/json"
NO_CREDENTIALS = {"detail": "Authentication credentials were not provided."}
INVALID_TOKEN = {"detail": "Invalid token."}
NOT_FOUND = {
    "error": {"message": "Task not found", "type": "not_found_error", "param": "task_hash"}
}
RATE_LIMITED = {
    "error": "Rate limit exceeded. Please try again later.",
    "type": "RateLimitExceeded",
    "code": 429,
}
_DEFAULT_DETAIL = {
    400: "Bad request.",
    401: "Invalid token.",
    403: "You do not have permission to perform this action.",
    500: "A server error occurred.",
}
EMPTY_BODY_STATUSES = frozenset({204, 205, 304})


def dumps(value: object) -> bytes:
    """``value`` as compact JSON bytes, as the API sends it."""
    return json.dumps(value, separators=(",", ":")).encode()


def iso(moment: datetime) -> str:
    """A timestamp as the documented bodies write it (with microseconds)."""
    return moment.isoformat(timespec="microseconds")


def encode_body(body: object) -> bytes:
    """A body to send: bytes as they are, text encoded, anything else as JSON."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return dumps(body)


def default_error_body(code: int) -> object:
    """The documented error body for status ``code``."""
    if code == 404:
        return NOT_FOUND
    if code == 429:
        return RATE_LIMITED
    if code in _DEFAULT_DETAIL:
        return {"detail": _DEFAULT_DETAIL[code]}
    try:
        phrase = HTTPStatus(code).phrase
    except ValueError:
        phrase = f"Error {code}"
    return {"detail": phrase + "."}
