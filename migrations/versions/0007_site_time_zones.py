"""Sites get an IANA time zone: expiry dates, visit days and "today" are judged at the site.

Sites that exist before this migration get UTC (what every date was judged in until now);
an administrator sets their real zone. New sites must name theirs.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sites') as batch:
        batch.add_column(
            sa.Column('time_zone', sa.String(length=64), nullable=False, server_default='UTC')
        )
    with op.batch_alter_table('sites') as batch:
        batch.alter_column('time_zone', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('sites') as batch:
        batch.drop_column('time_zone')
