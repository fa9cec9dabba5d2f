"""`python -m services.summarizer` starts the summarizer service."""

from common.grpc_server import run_service
from common.settings import load_settings
from services.summarizer.app import build
from services.summarizer.settings import SummarizerSettings

if __name__ == "__main__":
    run_service("summarizer", load_settings(SummarizerSettings), build)
