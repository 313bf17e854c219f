"""Constraint naming for SQLModel.metadata, set before any table model is defined."""

from sqlmodel import SQLModel

# Named constraints let Alembic's SQLite batch mode alter and drop them.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
