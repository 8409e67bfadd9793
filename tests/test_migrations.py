"""The models and the migrations must describe the same schema."""

from sqlalchemy import inspect

from db.migrate import drift
from db.models import Base


def test_models_and_migrations_agree(engine):
    assert drift(engine) == []


def test_every_model_table_exists(engine):
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
