"""A subject can be withdrawn from a trial (or withdraw consent): who, when and why.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 12:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('subjects') as batch:
        batch.add_column(sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('withdrawn_by', sa.String(64), nullable=True))
        batch.add_column(sa.Column('withdrawal_reason', sa.Text(), nullable=True))
        batch.add_column(
            sa.Column(
                'consent_withdrawn', sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )


def downgrade() -> None:
    with op.batch_alter_table('subjects') as batch:
        batch.drop_column('consent_withdrawn')
        batch.drop_column('withdrawal_reason')
        batch.drop_column('withdrawn_by')
        batch.drop_column('withdrawn_at')
