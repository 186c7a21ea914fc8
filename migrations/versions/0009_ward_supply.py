"""A ward names the hospital pharmacy that supplies it: vials reach a ward only from there.

Existing wards take the pharmacy their trials already name for them (trial_sites), when
there is one.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sites') as batch:
        batch.add_column(sa.Column('supplied_by_id', sa.Integer(), nullable=True))
        batch.create_foreign_key(
            'fk_sites_supplied_by_id_sites', 'sites', ['supplied_by_id'], ['id']
        )
    op.execute(
        "UPDATE sites SET supplied_by_id = (SELECT MIN(trial_sites.pharmacy_site_id) "
        "FROM trial_sites WHERE trial_sites.site_id = sites.id) WHERE kind = 'ward'"
    )


def downgrade() -> None:
    with op.batch_alter_table('sites') as batch:
        batch.drop_constraint('fk_sites_supplied_by_id_sites', type_='foreignkey')
        batch.drop_column('supplied_by_id')
