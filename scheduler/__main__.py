"""python -m scheduler: the worker (APScheduler jobs and the outbox dispatcher)."""

from scheduler.worker import main

if __name__ == "__main__":
    raise SystemExit(main())
