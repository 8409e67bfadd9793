"""python -m bench [--quick] [--loans N] [--database-url URL] [--only NAME] [--json PATH]

Seeds a fresh database (SQLite, and PostgreSQL when asked), runs each benchmark on it and
prints its figures, then one `RATIO name value goal` line per figure. Never fails on a
ratio: the exit status is 1 only when a benchmark crashed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import bot_e2e, dashboards, dispatch, lookups, pages, plan, seedfast, workers
from bench.common import Ctx, Figure, as_json, fresh_database, is_postgres, open_ctx

QUICK_LOANS = 50_000
FULL_LOANS = 1_000_000
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"
# In this order: the cheap ones first, the ones that add messages after planning.
BENCHMARKS: dict[str, Callable[[Ctx], list[Figure]]] = {
    "plan": plan.run,
    "lookups": lookups.run,
    "pages": pages.run,
    "dashboards": dashboards.run,
    "dispatch": dispatch.run,
    "workers": workers.run,
    "bot": bot_e2e.run,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50k loans, about 2 minutes")
    parser.add_argument("--loans", type=int, help="loans to seed (quick 50k, full 1M)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL"),
        help="an empty PostgreSQL database (default: a fresh one per run)",
    )
    parser.add_argument(
        "--backend",
        choices=("sqlite", "postgresql", "both"),
        help="default: quick sqlite (+postgresql with a URL), full both",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        help="run only this benchmark (repeatable; seeding always runs)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the seed already in --database-url (same --loans) if present",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (the test suite)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write figures")
    return parser.parse_args(argv)


def backends(args: argparse.Namespace) -> list[str]:
    if args.backend == "both" or (args.backend is None and not args.quick):
        return ["sqlite", "postgresql"]
    if args.backend:
        return [args.backend]
    return ["sqlite", "postgresql"] if args.database_url else ["sqlite"]


def run_backend(backend: str, args: argparse.Namespace, crashed: list[str]) -> list[Figure]:
    """Seed one fresh database and run the chosen benchmarks on it."""
    loans = args.loans or (QUICK_LOANS if args.quick else FULL_LOANS)
    given = args.database_url if backend == "postgresql" else None
    if given and not is_postgres(given):
        given = None
    figures: list[Figure] = []
    with fresh_database(backend, given) as url:
        ctx = open_ctx(
            backend,
            url,
            loans=loans,
            borrowers=seedfast.borrowers_for(loans),
            quick=args.quick or args.smoke,
            smoke=args.smoke,
        )
        try:
            if not (args.reuse and given and seedfast.attach(ctx)):
                figures += seedfast.run(ctx)
            for name in args.only or list(BENCHMARKS):
                try:
                    figures += BENCHMARKS[name](ctx)
                except Exception:
                    traceback.print_exc()
                    crashed.append(f"{name}/{backend}")
        finally:
            ctx.engine.dispose()
    return figures


def write_json(path: Path, args: argparse.Namespace, figures: list[Figure], seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "quick": args.quick,
        "seconds": round(seconds, 1),
        "figures": [as_json(f) for f in figures],
    }
    path.write_text(json.dumps(doc, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started, figures = time.perf_counter(), []
    crashed: list[str] = []
    for backend in backends(args):
        try:
            figures += run_backend(backend, args, crashed)
        except Exception:
            traceback.print_exc()
            crashed.append(f"seed/{backend}")
    seconds = time.perf_counter() - started
    write_json(args.json, args, figures, seconds)
    print(f"{len(figures)} figures in {seconds:.0f} s, written to {args.json}")
    if crashed:
        print("crashed: " + ", ".join(crashed), file=sys.stderr)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
