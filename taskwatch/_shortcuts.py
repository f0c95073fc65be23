"""One-call helpers that own a Client for the duration of one watch."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from ._policy import ChangeKey
from .client import DEFAULT_BASE_URL, Client
from .models import Task

__all__ = ["wait", "watch"]


async def watch(
    task_hash: str,
    *,
    api_key: str | None = None,
    base_url: str = DEFAULT_BASE_URL,
    min_interval: float = 1.0,
    max_interval: float = 30.0,
    timeout: float | None = None,
    key: ChangeKey | None = None,
) -> AsyncGenerator[Task, None]:
    """Watch one task with a client of its own (closed when the generator ends or is closed).

    Yields and raises as ``Client.watch``. For more than one task, share one ``Client``.
    """
    async with Client(api_key, base_url=base_url) as client:
        async for task in client.watch(
            task_hash,
            min_interval=min_interval,
            max_interval=max_interval,
            timeout=timeout,
            key=key,
        ):
            yield task


async def wait(
    task_hash: str,
    *,
    api_key: str | None = None,
    base_url: str = DEFAULT_BASE_URL,
    min_interval: float = 1.0,
    max_interval: float = 30.0,
    timeout: float | None = None,
    raise_on_failure: bool = False,
) -> Task:
    """Wait for one task with a client of its own; returns and raises as ``Client.wait``."""
    async with Client(api_key, base_url=base_url) as client:
        return await client.wait(
            task_hash,
            min_interval=min_interval,
            max_interval=max_interval,
            timeout=timeout,
            raise_on_failure=raise_on_failure,
        )
