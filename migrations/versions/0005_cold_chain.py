"""Cold chain: a shipper's logger readings and the excursions they show.

Readings are append-only; an excursion row is the index of its ledger events, and QA's
disposition fills its last columns.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 04:35:13.865595
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.migrate import create_append_only_triggers, drop_append_only_triggers

APPEND_ONLY = ("temperature_readings",)

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('excursions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shipment_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('logger_id', sa.String(length=40), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('peak_c', sa.Numeric(precision=8, scale=3), nullable=True),
    sa.Column('reading_count', sa.Integer(), nullable=False),
    sa.Column('ongoing', sa.Boolean(), nullable=False),
    sa.Column('detected_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('event_hash', sa.String(length=64), nullable=False),
    sa.Column('disposition', sa.String(length=8), nullable=True),
    sa.Column('disposed_by_id', sa.Integer(), nullable=True),
    sa.Column('disposed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('disposition_reason', sa.Text(), nullable=True),
    sa.Column('disposition_event_hash', sa.String(length=64), nullable=True),
    sa.CheckConstraint("disposition IS NULL OR disposition IN ('use', 'destroy')", name=op.f('ck_excursions_disposition_known')),
    sa.ForeignKeyConstraint(['disposed_by_id'], ['users.id'], name=op.f('fk_excursions_disposed_by_id_users')),
    sa.ForeignKeyConstraint(['shipment_id'], ['shipments.id'], name=op.f('fk_excursions_shipment_id_shipments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_excursions'))
    )
    with op.batch_alter_table('excursions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_excursions_shipment_id'), ['shipment_id'], unique=False)

    op.create_table('temperature_readings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('shipment_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('celsius', sa.Numeric(precision=8, scale=3), nullable=False),
    sa.Column('fahrenheit', sa.Numeric(precision=8, scale=3), nullable=True),
    sa.Column('logger_id', sa.String(length=40), nullable=False),
    sa.Column('event_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['shipment_id'], ['shipments.id'], name=op.f('fk_temperature_readings_shipment_id_shipments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_temperature_readings')),
    sa.UniqueConstraint('shipment_id', 'logger_id', 'at', name=op.f('uq_temperature_readings_shipment_id_logger_id_at'))
    )
    create_append_only_triggers(op, APPEND_ONLY)


def downgrade() -> None:
    drop_append_only_triggers(op, APPEND_ONLY)
    op.drop_table('temperature_readings')
    with op.batch_alter_table('excursions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_excursions_shipment_id'))

    op.drop_table('excursions')
