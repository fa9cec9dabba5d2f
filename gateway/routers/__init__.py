"""One router per resource of the public API; the app includes every one in ROUTERS."""

from fastapi import APIRouter

from gateway.routers import auth, health, users

ROUTERS: tuple[APIRouter, ...] = (health.router, auth.router, users.router)
