"""Independent upstream calls in parallel, failing like a single call would.

asyncio.TaskGroup wraps whatever its tasks raise in an ExceptionGroup, which
the problem handlers (keyed on grpc.aio.AioRpcError, HTTPException, ...) would
not recognise, turning a 404 from a service into a 500. `task_group` re-raises
the first failure itself; the other tasks are cancelled by the group as usual.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf exception of a (possibly nested) exception group."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


@asynccontextmanager
async def task_group() -> AsyncIterator[asyncio.TaskGroup]:
    """An asyncio.TaskGroup whose failure is the first task's exception, unwrapped."""
    try:
        async with asyncio.TaskGroup() as group:
            yield group
    except BaseExceptionGroup as errors:
        raise first_error(errors) from None
