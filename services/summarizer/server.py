"""The SummarizerService gRPC servicer: proto in, use case, proto out.

GetSummary is public; RequestSummary needs the verified caller from the
identity metadata (common.context), whose daily quota it spends.
"""

from __future__ import annotations

from typing import Any

import grpc
from agora.summarizer.v1 import summarizer_pb2, summarizer_pb2_grpc

from common.context import require_caller
from services.summarizer.service import SummarizerService

Context = grpc.aio.ServicerContext[Any, Any]


class SummarizerServicer(summarizer_pb2_grpc.SummarizerServiceServicer):
    def __init__(self, service: SummarizerService) -> None:
        self._service = service

    async def GetSummary(
        self, request: summarizer_pb2.GetSummaryRequest, context: Context
    ) -> summarizer_pb2.GetSummaryResponse:
        return await self._service.get_summary(request.post_id)

    async def RequestSummary(
        self, request: summarizer_pb2.RequestSummaryRequest, context: Context
    ) -> summarizer_pb2.RequestSummaryResponse:
        return await self._service.request_summary(require_caller(), request.post_id)
