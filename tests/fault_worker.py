"""One worker process for tests/test_fault.py: `python -m tests.fault_worker`.

The real worker (scheduler.worker.run_worker: dispatch, reconcile, SIGTERM drain) with
settings from the environment the test sets, and a TwilioSender with a short timeout so the
sandbox's hung calls time out in a second. Nothing here is mocked.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from db.config import Settings
from scheduler.sms import TwilioSender
from scheduler.worker import run_worker


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.twilio_account_sid and settings.twilio_auth_token
    sender = TwilioSender(
        settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value(),
        from_number=settings.twilio_from_number, api_base_url=settings.twilio_api_base_url,
        timeout=float(os.environ["FAULT_TWILIO_TIMEOUT"]), environ={},
    )  # fmt: skip
    reconcile_seconds = float(os.environ["FAULT_RECONCILE_SECONDS"])
    asyncio.run(run_worker(settings, sender, reconcile_seconds=reconcile_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
