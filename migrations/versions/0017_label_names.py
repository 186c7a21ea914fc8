"""A product version's label name: what the cryovial label prints in full.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08 01:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.migrate import create_append_only_triggers, drop_append_only_triggers

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # product_versions is append-only by trigger (rows, not columns): a new nullable column
    # leaves every existing version as it was.
    op.add_column('product_versions', sa.Column('label_name', sa.String(length=40), nullable=True))


def downgrade() -> None:
    # SQLite drops a column by copying the table, which would lose its triggers: they are
    # taken off first and put back after.
    drop_append_only_triggers(op, ('product_versions',))
    with op.batch_alter_table('product_versions') as batch:
        batch.drop_column('label_name')
    create_append_only_triggers(op, ('product_versions',))
