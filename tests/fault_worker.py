"""The processes of tests/test_fault.py: `python -m tests.fault_worker [web]`.

Without argument, the real worker (scheduler.worker.run_worker: dispatch, reconcile,
SIGTERM drain) with settings from the environment the test sets, and a TwilioSender with a
short timeout so the sandbox's hung calls time out in a second. With `web`, the real web app
(scheduler.web) with more database threads than the default, for 20,000 callbacks a run.
Nothing here is mocked.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor

from db.config import Settings
from db.session import make_engine, make_session_factory
from scheduler.sms import TwilioSender
from scheduler.web import build_web_app, make_server
from scheduler.worker import run_worker

WEB_THREADS = 16


def serve_web(settings: Settings) -> None:
    engine = make_engine(settings.database_url, pool_size=WEB_THREADS)
    server = make_server(
        build_web_app(settings, make_session_factory(engine)), settings, host="127.0.0.1"
    )
    server.config.access_log = False

    async def serve() -> None:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(WEB_THREADS))
        await server.serve()

    try:
        asyncio.run(serve())
    finally:
        engine.dispose()


def main() -> int:
    logging.basicConfig(
        level=logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    if sys.argv[1:] == ["web"]:
        serve_web(settings)
        return 0
    assert settings.twilio_account_sid and settings.twilio_auth_token
    sender = TwilioSender(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        from_number=settings.twilio_from_number,
        api_base_url=settings.twilio_api_base_url,
        timeout=float(os.environ["FAULT_TWILIO_TIMEOUT"]),
        environ={},
    )
    reconcile_seconds = float(os.environ["FAULT_RECONCILE_SECONDS"])
    asyncio.run(run_worker(settings, sender, reconcile_seconds=reconcile_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
