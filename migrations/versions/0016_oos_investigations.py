"""Out-of-specification investigations: one append-only row per OOS result; their course is
read from the lot's chain.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08 00:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.migrate import create_append_only_triggers, drop_append_only_triggers

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

APPEND_ONLY = ("oos_investigations",)


def upgrade() -> None:
    op.create_table(
        'oos_investigations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('lot_id', sa.Integer(), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('result_id', sa.Integer(), nullable=False),
        sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('event_hash', sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ['lot_id'], ['lots.id'], name=op.f('fk_oos_investigations_lot_id_lots')
        ),
        sa.ForeignKeyConstraint(
            ['result_id'], ['qc_results.id'], name=op.f('fk_oos_investigations_result_id_qc_results')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_oos_investigations')),
        sa.UniqueConstraint('lot_id', 'number', name=op.f('uq_oos_investigations_lot_id_number')),
        sa.UniqueConstraint('result_id', name=op.f('uq_oos_investigations_result_id')),
    )
    with op.batch_alter_table('oos_investigations', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_oos_investigations_lot_id'), ['lot_id'], unique=False
        )
    create_append_only_triggers(op, APPEND_ONLY)


def downgrade() -> None:
    drop_append_only_triggers(op, APPEND_ONLY)
    with op.batch_alter_table('oos_investigations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oos_investigations_lot_id'))
    op.drop_table('oos_investigations')
