"""`python -m services.posts` starts the posts service."""

from common.grpc_server import run_service
from common.settings import load_settings
from services.posts.app import build
from services.posts.settings import PostsSettings

if __name__ == "__main__":
    run_service("posts", load_settings(PostsSettings), build)
