"""``python -m api``: the scoring API image's entry point (host, port, workers from FRAUD_API_*)."""

import sys

from api.server import serve
from fraud_detection.logs import configure_logging

configure_logging("INFO")
sys.exit(serve())
