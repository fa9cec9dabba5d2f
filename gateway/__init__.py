"""The HTTP edge of Agora: a thin FastAPI app that translates the public API to gRPC.

The gateway owns no data. It validates requests against the public contract,
verifies access tokens locally, calls the domain services with deadlines and
maps their status codes to RFC 9457 problem details. `python -m gateway` runs it.
"""
