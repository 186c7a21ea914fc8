"""Label reconciliation (FACT 8th ed.): print jobs and one row per printed label, append-only.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 04:09:45.206914
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.migrate import create_append_only_triggers, drop_append_only_triggers


APPEND_ONLY = ("label_print_jobs", "label_prints")

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('label_print_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lot_id', sa.Integer(), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('layout', sa.String(length=8), nullable=True),
    sa.Column('dpi', sa.Integer(), nullable=False),
    sa.Column('label_count', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('quarantined', sa.Boolean(), nullable=False),
    sa.Column('printed_by_id', sa.Integer(), nullable=False),
    sa.Column('printed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('event_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['lot_id'], ['lots.id'], name=op.f('fk_label_print_jobs_lot_id_lots')),
    sa.ForeignKeyConstraint(['printed_by_id'], ['users.id'], name=op.f('fk_label_print_jobs_printed_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_print_jobs'))
    )
    with op.batch_alter_table('label_print_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_label_print_jobs_lot_id'), ['lot_id'], unique=False)

    op.create_table('label_prints',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('vial_id', sa.Integer(), nullable=False),
    sa.Column('replaces_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['label_print_jobs.id'], name=op.f('fk_label_prints_job_id_label_print_jobs')),
    sa.ForeignKeyConstraint(['replaces_id'], ['label_prints.id'], name=op.f('fk_label_prints_replaces_id_label_prints')),
    sa.ForeignKeyConstraint(['vial_id'], ['vials.id'], name=op.f('fk_label_prints_vial_id_vials')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_prints')),
    sa.UniqueConstraint('replaces_id', name=op.f('uq_label_prints_replaces_id'))
    )
    with op.batch_alter_table('label_prints', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_label_prints_job_id'), ['job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_label_prints_vial_id'), ['vial_id'], unique=False)
    create_append_only_triggers(op, APPEND_ONLY)

def downgrade() -> None:
    drop_append_only_triggers(op, APPEND_ONLY)
    with op.batch_alter_table('label_prints', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_label_prints_vial_id'))
        batch_op.drop_index(batch_op.f('ix_label_prints_job_id'))

    op.drop_table('label_prints')
    with op.batch_alter_table('label_print_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_label_print_jobs_lot_id'))

    op.drop_table('label_print_jobs')
