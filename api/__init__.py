"""The JSON API at /api/v1 (issue 13): FastAPI over the services in db/services.

An adapter like bot/ and scheduler/, on db alone; the command line mounts it beside the
Mini App and Twilio's webhooks (cli/miniapp.py). Read api/app.py first.
"""

from api.app import build_api

__all__ = ["build_api"]
