"""`python -m services.comments` starts the comments service."""

from common.grpc_server import run_service
from common.settings import load_settings
from services.comments.app import build
from services.comments.settings import CommentsSettings

if __name__ == "__main__":
    run_service("comments", load_settings(CommentsSettings), build)
