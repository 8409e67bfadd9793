"""Sample data: the deterministic seed (`vasooli seed`, the benchmarks' small runs, the tests)
and the demo agency built on it (`vasooli demo`). Never for a production database.

seed.py runs a seeding (staff, borrowers, loans); loans.py makes one loan's rows, rows.py
writes rows in bulk, shapes.py names where a sample loan stands, contacts.py makes names,
phones and addresses; demo.py prepares the demo's agency and logs its staff in.
"""

from db.sample.seed import seed
from db.sample.shapes import SEED_ACTION, STAFF_TELEGRAM_BASE, SeedReport, Shape

__all__ = ["SEED_ACTION", "STAFF_TELEGRAM_BASE", "SeedReport", "Shape", "seed"]
