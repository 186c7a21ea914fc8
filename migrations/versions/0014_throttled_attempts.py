"""An attempt refused while its account waited is recorded as throttled: audited, not counted
as a failure, so the wait never renews itself (NIST SP 800-63B §5.2.2 throttling).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.migrate import create_append_only_triggers, drop_append_only_triggers

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        'login_attempts',
        sa.Column('throttled', sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    # SQLite's batch mode rebuilds the table, which would lose its append-only triggers.
    drop_append_only_triggers(op, ('login_attempts',))
    with op.batch_alter_table('login_attempts') as batch:
        batch.drop_column('throttled')
    create_append_only_triggers(op, ('login_attempts',))
