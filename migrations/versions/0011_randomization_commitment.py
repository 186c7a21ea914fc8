"""The randomization seed is not kept: each list slot carries its keyed commitment to the
arm (for the RANDOMIZED event), the trial a SHA-256 commitment to the seed, for audit.

Existing slots get their commitments from the seed they were generated with, exactly as
randomization computed them; then the seed is dropped.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 12:30:00
"""

from __future__ import annotations

import hashlib
import hmac

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('randomization_slots') as batch:
        batch.add_column(sa.Column('arm_commitment', sa.String(64), nullable=True))
    with op.batch_alter_table('trials') as batch:
        batch.add_column(sa.Column('randomization_commitment', sa.String(64), nullable=True))
    connection = op.get_bind()
    slots = connection.execute(
        sa.text(
            "SELECT randomization_slots.id, trials.randomization_seed, sites.code, "
            "randomization_slots.sequence, arms.code FROM randomization_slots "
            "JOIN trials ON trials.id = randomization_slots.trial_id "
            "JOIN sites ON sites.id = randomization_slots.site_id "
            "JOIN arms ON arms.id = randomization_slots.arm_id"
        )
    ).all()
    for slot_id, seed, stratum, sequence, arm in slots:
        message = f"{stratum}:{sequence}:{arm}".encode()
        keyed = hmac.new((seed or "").encode(), message, hashlib.sha256).hexdigest()
        connection.execute(
            sa.text("UPDATE randomization_slots SET arm_commitment = :c WHERE id = :id"),
            {"c": keyed, "id": slot_id},
        )
    for trial_id, seed in connection.execute(
        sa.text("SELECT id, randomization_seed FROM trials WHERE randomization_seed IS NOT NULL")
    ).all():
        connection.execute(
            sa.text("UPDATE trials SET randomization_commitment = :c WHERE id = :id"),
            {"c": hashlib.sha256(seed.encode()).hexdigest(), "id": trial_id},
        )
    with op.batch_alter_table('trials') as batch:
        batch.drop_column('randomization_seed')


def downgrade() -> None:
    # The seeds are gone for good: a downgrade leaves the column empty.
    with op.batch_alter_table('trials') as batch:
        batch.add_column(sa.Column('randomization_seed', sa.String(64), nullable=True))
        batch.drop_column('randomization_commitment')
    with op.batch_alter_table('randomization_slots') as batch:
        batch.drop_column('arm_commitment')
