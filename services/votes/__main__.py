"""`python -m services.votes` starts the votes service."""

from common.grpc_server import run_service
from common.settings import load_settings
from services.votes.app import build
from services.votes.settings import VotesSettings

if __name__ == "__main__":
    run_service("votes", load_settings(VotesSettings), build)
