"""`python -m services.communities` starts the communities service."""

from common.grpc_server import run_service
from common.settings import load_settings
from services.communities.app import build
from services.communities.settings import CommunitiesSettings

if __name__ == "__main__":
    run_service("communities", load_settings(CommunitiesSettings), build)
