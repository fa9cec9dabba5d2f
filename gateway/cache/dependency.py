"""`CacheDep`: the app's response cache, for routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from gateway.cache.service import ResponseCache
from gateway.deps import ResourcesDep


async def get_cache(resources: ResourcesDep) -> ResponseCache:
    return resources.cache


CacheDep = Annotated[ResponseCache, Depends(get_cache)]
