"""A product version says whether its shipments need a temperature record covering the
whole transit (sealing to receipt) before any of its vials may be given.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


# Product versions are append-only (triggers refuse UPDATE and DELETE): the column is added
# and dropped in place, never by a batch copy of the table, which would lose the triggers.
def upgrade() -> None:
    op.add_column(
        'product_versions',
        sa.Column(
            'temperature_record_required', sa.Boolean(), nullable=False, server_default=sa.false()
        ),
    )


def downgrade() -> None:
    op.drop_column('product_versions', 'temperature_record_required')
