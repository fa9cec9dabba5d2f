"""`python -m services.auth` starts the auth service."""

from common.grpc_server import run_service
from common.settings import load_settings
from services.auth.app import build
from services.auth.settings import AuthSettings

if __name__ == "__main__":
    run_service("auth", load_settings(AuthSettings), build)
