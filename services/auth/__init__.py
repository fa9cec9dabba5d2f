"""The auth service: users, credentials and sessions, and the keys that sign access tokens.

Every other process verifies access tokens locally against the JWKS published
here, so this is the only place that ever holds a private signing key.
"""
