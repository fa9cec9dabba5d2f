"""The response cache: ready-to-send bytes of public reads in Redis, shared by every replica.

`document` is the stored form (anonymous bytes plus where per-user members
go), `personal` the per-user members, `keys` the entry and tag names, `store`
the Redis scripts, `service` the cache-aside flow routes use, `dependency`
the FastAPI dependency that hands it to them.
"""
