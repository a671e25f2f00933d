"""``chrono serve``: a FastAPI app with a JSON API and server-rendered pages over the timeline
database and the sensor pipeline's buckets and state."""

from chrono.web.app import create_app
from chrono.web.settings import WebSettings

__all__ = ["WebSettings", "create_app"]
