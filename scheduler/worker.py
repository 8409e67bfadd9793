"""The worker process: APScheduler jobs around the plain functions of scheduler.jobs.

Jobs: dispatch every DISPATCH_INTERVAL_SECONDS, plan reminders every 15 minutes,
reconcile every 5 minutes, the daily job at DAILY_JOBS_AT in the agency's zone; planning
and the daily job also run once at start (both are idempotent, and a worker that was down
at the daily time must not skip a day).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.orm import Session, sessionmaker

from db import clock, process
from db.config import Settings, load_settings
from db.session import make_engine, make_session_factory
from scheduler import jobs
from scheduler.dispatch import make_limiter
from scheduler.sms import SmsSender, make_sender

log = logging.getLogger(__name__)

PLAN_EVERY_MINUTES = 15
RECONCILE_EVERY_MINUTES = 5
# How long a stop waits for running jobs before cancelling them. A dispatch run only has
# the sends already handed to the provider to finish: it puts the rest back in the queue.
DRAIN_SECONDS = 30.0
# How long cancelled jobs get to unwind.
CANCEL_SECONDS = 5.0


def worker_id() -> str:
    """hostname:pid, recorded on each message this worker claims."""
    return f"{socket.gethostname()}:{os.getpid()}"[:64]


class WorkerJobs:
    """The job functions, bound to one worker's settings, database and sender."""

    def __init__(
        self,
        settings: Settings,
        factory: sessionmaker[Session],
        sender: SmsSender,
        worker: str | None = None,
    ) -> None:
        self.settings, self.factory, self.sender = settings, factory, sender
        self.worker = worker or worker_id()
        self.limiter = make_limiter(settings.sms_rate_per_second)  # shared by every run
        self.stopping = asyncio.Event()
        self.running: set[asyncio.Task[Any]] = set()

    async def _tracked(self, coro: Any) -> Any:
        task = asyncio.current_task()
        if task is not None:
            self.running.add(task)
        try:
            return await coro
        finally:
            if task is not None:
                self.running.discard(task)

    async def dispatch(self) -> jobs.DispatchReport:
        return await self._tracked(
            jobs.dispatch_due(
                self.factory,
                self.sender,
                settings=self.settings,
                worker_id=self.worker,
                limiter=self.limiter,
                stop=self.stopping,
            )
        )

    async def reconcile(self) -> jobs.ReconcileReport:
        return await self._tracked(
            jobs.reconcile(self.factory, self.sender, settings=self.settings)
        )

    def _plan(self) -> int:
        today, queued = clock.today(self.settings.tz), 0
        # One transaction per rule: the bot's writes are not held up by a long planning run.
        for days in self.settings.reminder_days:
            with self.factory.begin() as session:
                queued += jobs.plan_rule(session, days=days, today=today, settings=self.settings)
        log.info("planned %s reminders for %s", queued, today)
        return queued

    async def plan(self) -> int:
        return await self._tracked(asyncio.to_thread(self._plan))

    def _daily(self) -> jobs.DailyReport:
        # A batch of loans per transaction: the bot is never held up by the whole book.
        report = jobs.daily_in_batches(
            self.factory, today=clock.today(self.settings.tz), settings=self.settings
        )
        log.info("daily job: %s", report)
        return report

    async def daily(self) -> jobs.DailyReport:
        return await self._tracked(asyncio.to_thread(self._daily))


class WorkerScheduler(AsyncIOScheduler):
    """An AsyncIOScheduler that knows its jobs, so it can stop without cutting a send short."""

    def __init__(self, worker_jobs: WorkerJobs, **options: Any) -> None:
        super().__init__(**options)
        self.worker_jobs = worker_jobs

    async def drain(self, timeout: float = DRAIN_SECONDS) -> None:
        """Start nothing new, let running jobs finish (up to timeout), then shut down."""
        if self.running:
            self.pause()
        self.worker_jobs.stopping.set()
        running = set(self.worker_jobs.running)
        if running:
            _done, late = await asyncio.wait(running, timeout=timeout)
            if late:
                log.warning("stopping: %s job(s) still running were cancelled", len(late))
                for task in late:
                    task.cancel()
                # Before the sender and engine close under them (a cancelled send is SENDING
                # for reconcile, the same as after a crash).
                await asyncio.wait(late, timeout=CANCEL_SECONDS)
        if self.running:
            self.shutdown(wait=False)


def build_scheduler(
    settings: Settings,
    session_factory: sessionmaker[Session],
    sender: SmsSender,
    *,
    worker: str | None = None,
    reconcile_seconds: float | None = None,
) -> WorkerScheduler:
    """The worker's scheduler with its jobs added (not started: call start() in a loop).

    reconcile_seconds: how often to reconcile (default RECONCILE_EVERY_MINUTES; the fault
    tests run it every second, with a lease of seconds).
    """
    wj = WorkerJobs(settings, session_factory, sender, worker)
    scheduler = WorkerScheduler(wj, timezone=settings.tz)
    # One run of a job at a time; missed runs collapse into one instead of piling up.
    common: dict[str, Any] = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 60}
    every = IntervalTrigger(seconds=settings.dispatch_interval_seconds)
    scheduler.add_job(wj.dispatch, every, id="dispatch", **common)
    scheduler.add_job(wj.plan, IntervalTrigger(minutes=PLAN_EVERY_MINUTES), id="plan", **common)
    scheduler.add_job(wj.plan, id="plan_at_start", **common)
    reconcile_every = IntervalTrigger(seconds=reconcile_seconds or RECONCILE_EVERY_MINUTES * 60)
    scheduler.add_job(wj.reconcile, reconcile_every, id="reconcile", **common)
    at = settings.daily_time
    daily = CronTrigger(hour=at.hour, minute=at.minute, timezone=settings.tz)
    scheduler.add_job(wj.daily, daily, id="daily", **common)
    scheduler.add_job(wj.daily, id="daily_at_start", **common)
    return scheduler


async def run_worker(
    settings: Settings, sender: SmsSender, *, reconcile_seconds: float | None = None
) -> None:
    """Run the jobs until SIGINT or SIGTERM, then stop cleanly."""
    engine = make_engine(settings.database_url)
    scheduler = build_scheduler(
        settings, make_session_factory(engine), sender, reconcile_seconds=reconcile_seconds
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    scheduler.start()
    log.info("worker %s started", scheduler.worker_jobs.worker)
    try:
        await stop.wait()
        log.info("worker stopping")
    finally:
        await scheduler.drain()
        await sender.aclose()
        engine.dispose()


@process.entry_point("vasooli worker")
def main() -> int:
    """python -m scheduler: a settings problem exits with status 2 (db/process.py)."""
    settings = load_settings()
    sender = make_sender(settings)
    asyncio.run(run_worker(settings, sender))
    return 0
