"""An exceptional release names its subject by trial and code together.

Subject codes are unique only within a trial: the code alone let a subject of another trial
with the same code receive the lot. Lots released exceptionally before this migration keep a
NULL trial, which matches no subject: QA releases them again for the subject in its trial.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 03:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('lots') as batch:
        batch.add_column(sa.Column('exceptional_trial', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('lots') as batch:
        batch.drop_column('exceptional_trial')
