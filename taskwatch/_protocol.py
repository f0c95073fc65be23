"""The pure core of the protocol: no I/O, no clock of its own.

- ``task_url`` / ``auth_headers``: what to send for a hash (validation lives here, once);
- ``decode_task``: ``(status, reason, headers, body) -> Task``, or raise the ``APIError``
  subclass / ``ResponseFormatError`` that the answer means (every documented error shape);
- ``RateLimitInfo.from_headers``, ``parse_retry_after`` and ``reset_wait``: the server's
  rate-limit advice as plain numbers, ``None`` when absent, garbage or absurd (see
  ``sane_wait``: a wait beyond ``MAX_SERVER_WAIT`` is treated as not given).
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import attrs
from multidict import istr
from yarl import URL

from . import _convert, _reader
from ._frozen import filling_class
from ._frozen import new_filling as _new
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    InvalidTaskHashError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatError,
    ServerError,
)
from .models import Task

#: The largest body taskwatch reads. A task is a few KB; anything past this is refused with
#: ResponseFormatError rather than held in memory.
MAX_BODY_BYTES = 1 << 20

#: The longest wait taskwatch takes on the server's word (Retry-After, X-RateLimit-Reset, the
#: "Expected available in N seconds" message), in seconds. The documented window is one minute:
#: a longer wait is a broken or hostile answer, and is treated as not given (as the openai,
#: anthropic and stripe SDKs do), so that taskwatch's own backoff or default pause applies.
MAX_SERVER_WAIT = 120.0

# One safe path segment: RFC 3986 unreserved characters only, so no input can add a path
# segment, a query or a fragment, and nothing needs escaping. Task hashes are 32 hex
# characters in every documented example; we only insist on "one safe segment".
_HASH_PATTERN = re.compile(r"[A-Za-z0-9._~-]{1,256}")
# What every Lobstr.io task hash seen so far looks like (used for a hint only, never to refuse).
_LOOKS_LIKE_A_HASH = re.compile(r"[0-9a-f]{32}")
_THROTTLED_PATTERN = re.compile(r"available in (\d+(?:\.\d+)?) seconds?")
_BODY_EXCERPT = 2000
# Header names as multidict's case-insensitive strings: a lookup in aiohttp's headers need not
# fold the name's case again on every answer (any Mapping still takes them: they are str).
_LIMIT_HEADER = istr("X-RateLimit-Limit")
_REMAINING_HEADER = istr("X-RateLimit-Remaining")
_RESET_HEADER = istr("X-RateLimit-Reset")

_loads: Callable[[bytes], Any]
# orjson parses a task body several times faster: pip install 'lobstr-taskwatch[fast]'
try:
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    _loads = json.loads

_STATUS_ERRORS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}


def validate_task_hash(task_hash: object) -> str:
    """Return ``task_hash`` if it is one safe URL path segment, else raise InvalidTaskHashError."""
    if not isinstance(task_hash, str):
        raise InvalidTaskHashError(f"a task hash must be a str, not {type(task_hash).__name__}")
    if _HASH_PATTERN.fullmatch(task_hash) is None or task_hash in {".", ".."}:
        shown = task_hash if len(task_hash) <= 80 else task_hash[:77] + "..."
        raise InvalidTaskHashError(
            f"invalid task hash {shown!r}: expected 1-256 characters from A-Z a-z 0-9 . _ ~ - "
            "(Lobstr.io task hashes look like 'c5e29d2aba8b77cdc56391e7405302de')",
            task_hash=task_hash,
        )
    return task_hash


def normalise_base_url(base_url: str | URL) -> URL:
    """The API root as a URL without a trailing slash; raises ValueError when not http(s)."""
    url = URL(base_url)
    if url.scheme not in {"http", "https"} or not url.host:
        raise ValueError(f"base_url must be an absolute http(s) URL, got {str(base_url)!r}")
    if url.query_string or url.fragment:
        raise ValueError("base_url must not carry a query or a fragment")
    return url.with_path(url.path.rstrip("/"))


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` names this machine (``localhost``, ``*.localhost``, a loopback IP),
    where plain http cannot expose the key to the network."""
    if host is None:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def task_url(base_url: URL, task_hash: str) -> URL:
    """``{base_url}/tasks/{task_hash}`` after validating the hash (see validate_task_hash)."""
    validate_task_hash(task_hash)
    return URL(f"{base_url}/tasks/{task_hash}", encoded=True)


def auth_headers(api_key: str, user_agent: str) -> dict[str, str]:
    """The headers of every request: the documented ``Authorization: Token KEY`` scheme."""
    return {
        "Authorization": f"Token {api_key}",
        "Accept": "application/json",
        "User-Agent": user_agent,
    }


@attrs.frozen(slots=True)
class RateLimitInfo:
    """The server's ``X-RateLimit-*`` headers as numbers; a field is None when absent or garbage.

    Attributes:
        limit: requests allowed per window (per minute on /v1/tasks).
        remaining: requests left in the current window.
        reset: UNIX timestamp at which the window resets.
    """

    limit: int | None
    remaining: int | None
    reset: float | None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitInfo | None:
        """Read the three headers; None when none of them is usable."""
        get = headers.get
        limit = _non_negative_int(get(_LIMIT_HEADER))
        remaining = _non_negative_int(get(_REMAINING_HEADER))
        reset = _finite_non_negative(get(_RESET_HEADER))
        if limit is None and remaining is None and reset is None:
            return None
        filling = _RATE_LIMIT_FILLING
        if cls is not RateLimitInfo or filling is None:  # (see _frozen)
            return cls(limit, remaining, reset)
        # What the constructor builds, for a fraction of its cost (see _frozen).
        info: Any = _new(filling)
        info.limit = limit
        info.remaining = remaining
        info.reset = reset
        info.__class__ = RateLimitInfo
        return info  # type: ignore[no-any-return]  # a RateLimitInfo: its class was just set


_RATE_LIMIT_FILLING = filling_class(RateLimitInfo)


def _non_negative_int(text: str | None) -> int | None:
    """A header's integer, None when absent, garbage or negative (``int()`` ignores the
    surrounding whitespace itself)."""
    if text is None:
        return None
    try:
        number = int(text)
    except ValueError:
        return None
    return number if number >= 0 else None


def _finite_non_negative(text: str | None) -> float | None:
    """A header's number, None when absent, garbage, negative, infinite or NaN."""
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if 0.0 <= number < math.inf else None


def sane_wait(seconds: float, cap: float = MAX_SERVER_WAIT) -> float | None:
    """A server-suggested wait as taskwatch takes it: negative gives 0.0; a wait beyond
    ``cap`` (or not finite) gives None, "not given", never ``cap``."""
    if not math.isfinite(seconds) or seconds > cap:
        return None
    return max(seconds, 0.0)


def parse_retry_after(value: str | None, now: float, cap: float = MAX_SERVER_WAIT) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or HTTP-date, RFC 9110).

    ``now`` is the current UNIX time (for HTTP-dates). Negative and past values give 0.0;
    absent, unparseable and absurd values (beyond ``cap``, see ``sane_wait``) give None.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT; "-0000" parses as naive
            return None
        seconds = when.timestamp() - now
    return sane_wait(seconds, cap)


def reset_wait(info: RateLimitInfo, now: float) -> float | None:
    """Seconds to hold everyone when the server says the window is spent (``Remaining: 0``),
    until its ``Reset`` (UNIX time ``now`` is compared with); None when there is nothing to
    wait, or when the reset is absurdly far (see ``sane_wait``)."""
    if info.remaining != 0 or info.reset is None:
        return None
    wait = sane_wait(info.reset - now)
    return wait if wait else None


def _error_parts(data: Any) -> tuple[str | None, str | None]:
    """(message, type) from any documented error body shape."""
    if not isinstance(data, dict):
        return None, None
    detail = data.get("detail")
    if isinstance(detail, str):  # {"detail": "Invalid token."}
        return detail, None
    for key in ("error", "errors"):
        error = data.get(key)
        if isinstance(error, dict):  # {"error": {"message": ..., "type": ...}}
            message, kind = error.get("message"), error.get("type")
            return (
                message if isinstance(message, str) else None,
                kind if isinstance(kind, str) else None,
            )
        if isinstance(error, str):  # {"error": "...", "type": "...", "code": 429}
            kind = data.get("type")
            return error, kind if isinstance(kind, str) else None
    message = data.get("message")
    return (message if isinstance(message, str) else None), None


def _decode_error_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        text = body[:_BODY_EXCERPT].decode("utf-8", "replace")
        return text or None


def error_for(
    status: int,
    reason: str | None,
    headers: Mapping[str, str],
    body: bytes,
    *,
    task_hash: str | None,
    now: float,
) -> APIError:
    """The APIError subclass an error answer means, with the message from its body."""
    data = _decode_error_body(body)
    message, kind = _error_parts(data)
    if 300 <= status < 400:
        location = headers.get("Location", "")
        message = (
            f"the API answered with a redirect to {location!r}; taskwatch does not follow "
            "redirects (so the key is never sent elsewhere): set base_url to the final address"
        )
    if not message:
        message = reason or f"HTTP {status}"
    if status == 429 or status >= 500:
        retry_after = parse_retry_after(headers.get("Retry-After"), now)
        if retry_after is None and message:
            # {"detail": "Request was throttled. Expected available in 2 seconds."}
            match = _THROTTLED_PATTERN.search(message)
            if match is not None:
                retry_after = sane_wait(float(match.group(1)))
        cls: type[RateLimitError] | type[ServerError] = (
            RateLimitError if status == 429 else ServerError
        )
        error = cls(
            message,
            status=status,
            body=data,
            error_type=kind,
            task_hash=task_hash,
            retry_after=retry_after,
        )
        if status >= 500 and task_hash is not None and not _LOOKS_LIKE_A_HASH.fullmatch(task_hash):
            # The service has answered truncated or unknown hashes with 500, not 404.
            error.hint = (
                "the API has answered 500 for truncated or unknown hashes, and this one is not"
                " 32 hex characters: check it is complete"
            )
        return error
    error_cls = _STATUS_ERRORS.get(status, APIError)
    return error_cls(message, status=status, body=data, error_type=kind, task_hash=task_hash)


# What may be left of a number, or of a string escape, when a document stops inside it.
_NUMBER_TAIL = re.compile(r"-|\.\d*(?:[eE][+-]?\d*)?|[eE][+-]?")
_ESCAPE_TAIL = re.compile(r"\\u[0-9a-fA-F]{0,4}")


def _cut_off(body: bytes, exc: json.JSONDecodeError) -> bool:
    """True when a body reads as the start of a JSON document that stops early."""
    if body.lstrip()[:1] not in (b"{", b"["):
        return False
    if exc.msg.startswith("Unterminated string"):
        return True
    doc, pos = exc.doc, exc.pos
    if exc.msg.startswith("Invalid \\u"):  # the decoder's message for a bad \u escape
        # "\u", "\u00" or even "\u00e9" at the very end (the decoder wants one more char)
        return _ESCAPE_TAIL.fullmatch(doc, max(pos - 1, 0)) is not None
    rest = doc[pos:].strip()
    if rest == "" or any(literal.startswith(rest) for literal in ("true", "false", "null")):
        return True
    # A number cut off: "-", "12.", "1e", "1.5e-" (the decoder stopped after the digits).
    return _NUMBER_TAIL.fullmatch(rest) is not None and (
        rest == "-" or doc[pos - 1 : pos].isdigit()
    )


def _cut_in_a_character(body: bytes, exc: UnicodeDecodeError) -> bool:
    """True when the only undecodable bytes are a multi-byte character cut at the end, and
    what comes before them is itself a JSON document cut off."""
    if exc.end != len(body) or exc.reason != "unexpected end of data":
        return False
    head = body[: exc.start]
    try:
        json.loads(head)
    except json.JSONDecodeError as inner:
        return _cut_off(head, inner)
    except ValueError:
        return False
    return False


def decode_task(
    status: int,
    reason: str | None,
    headers: Mapping[str, str],
    body: bytes,
    *,
    task_hash: str | None,
    now: float,
) -> Task:
    """Turn one HTTP answer into a Task, or raise what it means.

    Raises:
        APIError (a subclass per status) for any status but 2xx.
        ResponseFormatError when a 2xx body is not the documented task; ``truncated`` is set
            when the body stops in the middle of a JSON document.
    """
    if not 200 <= status < 300:
        raise error_for(status, reason, headers, body, task_hash=task_hash, now=now)
    return parse_task(body, task_hash)


def parse_task(body: bytes, task_hash: str | None) -> Task:
    """Turn a 2xx body into a Task; raises ResponseFormatError (see ``decode_task``)."""
    return read_task(body, task_hash)[0]


def read_task(body: bytes, task_hash: str | None) -> tuple[Task, list[str]]:
    """Turn a 2xx body into a Task read tolerantly (see ``_reader``), and the list of ways
    the body deviated from the documented shape (field and kind, never a value).

    Raises:
        ResponseFormatError: the body is not JSON (``truncated`` when it stops in the middle
            of a document), not a JSON object, or names a task other than ``task_hash``.
    """
    try:
        data = _loads(body)
    except (ValueError, RecursionError):  # orjson's and json's decode errors are ValueErrors
        raise _not_json(body, task_hash) from None
    task = _reader.read_documented(data, task_hash)
    if task is not None:
        return task, []
    shaped, deviations = _reader.read_task_body(data, task_hash)
    return _convert.build_task(shaped), deviations


def _not_json(body: bytes, task_hash: str | None) -> ResponseFormatError:
    """The error for a body that does not decode, classified with the standard library's
    decoder (whose messages and positions tell a document cut off from garbage)."""
    try:
        json.loads(body)
    except json.JSONDecodeError as exc:
        truncated = _cut_off(body, exc)
        what = "a JSON document cut off" if truncated else "not JSON"
        error = ResponseFormatError(
            f"the task body is {what} ({len(body)} bytes)",
            task_hash=task_hash,
            details=[str(exc)],
            truncated=truncated,
        )
        error.__cause__ = exc
        return error
    except UnicodeDecodeError as exc:  # undecodable bytes: cut mid-character, or garbage
        truncated = _cut_in_a_character(body, exc)
        what = "a JSON document cut off" if truncated else "not JSON"
        error = ResponseFormatError(
            f"the task body is {what} ({len(body)} bytes)",
            task_hash=task_hash,
            details=[repr(exc)],
            truncated=truncated,
        )
        error.__cause__ = exc
        return error
    except (ValueError, RecursionError) as exc:  # absurd nesting, absurd numbers
        error = ResponseFormatError(
            "the task body is not JSON", task_hash=task_hash, details=[repr(exc)]
        )
        error.__cause__ = exc
        return error
    # The fast decoder refused what the standard one accepts (e.g. lone surrogates).
    return ResponseFormatError("the task body is not JSON", task_hash=task_hash)


def too_large(task_hash: str | None, size: int) -> ResponseFormatError:
    """The error for a body over MAX_BODY_BYTES (``size`` is what was seen so far)."""
    return ResponseFormatError(
        f"the response body is larger than the {MAX_BODY_BYTES} byte limit ({size} bytes seen)",
        task_hash=task_hash,
    )
