"""A site may explicitly allow plain (unauthenticated) wristbands at its bedsides; by
default the bedside takes only wristbands carrying celltrail's authentication code.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 12:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        'sites',
        sa.Column(
            'plain_wristbands_allowed', sa.Boolean(), nullable=False, server_default=sa.false()
        ),
    )


def downgrade() -> None:
    with op.batch_alter_table('sites') as batch:
        batch.drop_column('plain_wristbands_allowed')
