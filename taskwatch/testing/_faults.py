"""Faults to inject into a simulated API's answers."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Literal, get_args

import attrs

from ._bodies import (
    EMPTY_BODY_STATUSES,
    JSON_CT,
    RATE_LIMITED,
    default_error_body,
    encode_body,
)

FaultKind = Literal[
    "status",
    "rate_limited",
    "delay",
    "hang",
    "drop",
    "truncated",
    "malformed",
    "redirect",
    "large",
    "slow_drip",
]
"""The kinds of :class:`Fault`; each has a constructor of the same name on :class:`Fault`."""

_FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)


def _retry_after_text(value: float | str) -> str:
    if isinstance(value, str):
        return value
    if value < 0:
        raise ValueError(f"retry_after must be >= 0, got {value!r}")
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


@attrs.frozen
class Fault:
    """A failure to inject into matching requests with :meth:`SimulatedTaskAPI.inject`.

    Build faults with the class methods (:meth:`status`, :meth:`rate_limited`,
    :meth:`throttled`, :meth:`delay`, :meth:`hang`, :meth:`drop`, :meth:`truncated`,
    :meth:`malformed`, :meth:`redirect`, :meth:`large`, :meth:`slow_drip`) rather than
    the constructor. Faults are immutable and can be injected any number of times.

    A faulted request takes the fault instead of the normal checks (a fault wins over a
    401, 404 or 429 the request would otherwise get), but it still counts in the
    rate-limit window and in :attr:`SimulatedTaskAPI.stats`. The "delivery" faults
    (:meth:`delay`, :meth:`truncated`, :meth:`large`, :meth:`slow_drip`) deliver the
    response the request would normally get (a 200 for a known task and a valid key).

    Attributes:
        kind: which failure (one of ``FaultKind``).
        code: the status to answer (``status``, ``rate_limited``, ``malformed``, ``redirect``).
        body: the body those kinds send.
        content_type: the Content-Type of that body (None: no header).
        headers: extra response headers, as (name, value) pairs.
        seconds: how long to wait (``delay``) or to spread the body over (``slow_drip``).
        chunks: how many pieces ``slow_drip`` sends the body in.
        nbytes: about how many bytes ``large`` pads the body to.
    """

    kind: FaultKind = attrs.field(validator=attrs.validators.in_(_FAULT_KINDS))
    code: int = 200
    body: bytes = b""
    content_type: str | None = JSON_CT
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    chunks: int = 1
    nbytes: int = 0

    @classmethod
    def status(
        cls,
        code: int,
        body: object = None,
        headers: Mapping[str, str] | None = None,
        *,
        content_type: str | None = JSON_CT,
    ) -> Fault:
        """Answer with HTTP status ``code`` (200-599) and a JSON error body.

        ``body`` may be bytes or str (sent verbatim) or a JSON-serialisable value. The
        default body has the documented shape for the code: ``{"detail": ...}`` for most
        codes (for example ``{"detail": "A server error occurred."}`` for 500), the
        documented not-found body for 404 and the documented rate-limit body for 429.
        ``headers`` are added to (and override) the response's headers; a ``status(429)``
        carries no ``Retry-After`` unless given here (use :meth:`rate_limited` for one).
        """
        if not 200 <= code <= 599:
            raise ValueError(f"status code must be in 200..599, got {code!r}")
        if code in EMPTY_BODY_STATUSES:
            encoded = b""
        else:
            encoded = encode_body(default_error_body(code) if body is None else body)
        return cls(
            kind="status",
            code=code,
            body=encoded,
            content_type=content_type,
            headers=tuple((headers or {}).items()),
        )

    @classmethod
    def rate_limited(cls, retry_after: float | str = 2, *, body: object = None) -> Fault:
        """Answer 429 with ``Retry-After`` and the documented rate-limit body.

        A number is sent as whole seconds when integral (``2`` -> ``"2"``) and otherwise
        as a decimal (``0.5`` -> ``"0.5"``, not standard HTTP but handy for fast tests);
        a string (an HTTP-date, or garbage) is sent verbatim. ``body`` replaces the
        documented ``{"error": "Rate limit exceeded. ...", "type": "RateLimitExceeded",
        "code": 429}`` body. Counts as a 429 in the stats.
        """
        return cls(
            kind="rate_limited",
            code=429,
            body=encode_body(RATE_LIMITED if body is None else body),
            headers=(("Retry-After", _retry_after_text(retry_after)),),
        )

    @classmethod
    def throttled(cls, wait: int = 2) -> Fault:
        """Answer 429 in the documented throttling style.

        The body is ``{"detail": "Request was throttled. Expected available in N
        seconds."}`` with ``Retry-After: N``.
        """
        if wait < 0:
            raise ValueError(f"wait must be >= 0, got {wait!r}")
        detail = {"detail": f"Request was throttled. Expected available in {wait} seconds."}
        return cls.rate_limited(wait, body=detail)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Answer normally, but only after ``seconds`` real seconds.

        If the server closes meanwhile, the connection is closed without an answer.
        """
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        return cls(kind="delay", seconds=float(seconds))

    @classmethod
    def hang(cls) -> Fault:
        """Never answer: hold the request until the client goes away or the server closes.

        On server close the connection is closed without an answer.
        """
        return cls(kind="hang")

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection without sending any response.

        Note that aiohttp's client silently retries an idempotent request once when the
        server disconnects before answering; inject with ``times=2`` for an aiohttp
        client to see the ``ServerDisconnectedError``. Both attempts count as requests.
        """
        return cls(kind="drop")

    @classmethod
    def truncated(cls) -> Fault:
        """Send the normal response's status line and headers, including a
        ``Content-Length`` for the full body, then half the body, then close the
        connection. A client sees a payload error while reading the body.
        """
        return cls(kind="truncated")

    @classmethod
    def malformed(
        cls,
        body: bytes = b"<html><head><title>Maintenance</title></head>"
        b"<body><h1>Down for maintenance</h1></body></html>",
        content_type: str | None = "text/html",
        status: int = 200,
    ) -> Fault:
        """Answer ``status`` (200 by default) with ``body`` sent verbatim.

        ``body`` may be anything: HTML, ``b""``, JSON text cut off mid-way; the
        ``Content-Length`` matches what is sent. ``content_type`` ``None`` leaves the
        header to aiohttp's default (``application/octet-stream``).
        """
        if not 200 <= status <= 599:
            raise ValueError(f"status must be in 200..599, got {status!r}")
        return cls(kind="malformed", code=status, body=body, content_type=content_type)

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Fault:
        """Answer ``status`` (302 by default) with ``Location: location`` and no body."""
        if not 300 <= status <= 399:
            raise ValueError(f"redirect status must be in 300..399, got {status!r}")
        return cls(
            kind="redirect", code=status, content_type=None, headers=(("Location", location),)
        )

    @classmethod
    def large(cls, nbytes: int) -> Fault:
        """Deliver the normal response with its JSON body padded to about ``nbytes`` bytes.

        A task body is padded inside ``params`` (key ``"padding"``), other bodies get a
        top-level ``"padding"`` key. The body stays valid JSON.
        """
        if nbytes < 0:
            raise ValueError(f"nbytes must be >= 0, got {nbytes!r}")
        return cls(kind="large", nbytes=nbytes)

    @classmethod
    def slow_drip(cls, seconds: float, chunks: int = 10) -> Fault:
        """Deliver the normal response with its headers at once and its body in
        ``chunks`` pieces, one every ``seconds / chunks`` real seconds.

        If the server closes meanwhile, the connection is closed mid-body.
        """
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds!r}")
        if chunks < 1:
            raise ValueError(f"chunks must be >= 1, got {chunks!r}")
        return cls(kind="slow_drip", seconds=float(seconds), chunks=chunks)


@attrs.define
class ArmedFault:
    """A fault injected with ``inject``: for which hash (None: any), how many times more."""

    fault: Fault
    task_hash: str | None
    remaining: int | None


@attrs.define
class RandomFaults:
    """The faults ``inject_randomly`` draws from, and how often."""

    probability: float
    faults: tuple[Fault, ...]
    weights: tuple[float, ...] | None
    task_hash: str | None
    rng: random.Random
