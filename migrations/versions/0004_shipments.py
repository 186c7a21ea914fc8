"""Shipments: dry shippers, the vials packed in them, handoffs and receipts.

The ledger holds the record; these tables index it (custodian, packed vials) for queries.
Handoffs and receipts are append-only.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 04:27:04.923340
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.migrate import create_append_only_triggers, drop_append_only_triggers
from sqlalchemy.dialects import postgresql

APPEND_ONLY = ("handoffs", "receipts")

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('shipments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sscc', sa.String(length=18), nullable=False),
    sa.Column('asset_id', sa.String(length=40), nullable=True),
    sa.Column('logger_id', sa.String(length=40), nullable=True),
    sa.Column('from_site_id', sa.Integer(), nullable=False),
    sa.Column('to_site_id', sa.Integer(), nullable=False),
    sa.Column('storage_limit_c', sa.Numeric(precision=6, scale=1), nullable=True),
    sa.Column('hold_time_hours', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('seal_number', sa.String(length=40), nullable=True),
    sa.Column('sealed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('shipped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('custodian_id', sa.Integer(), nullable=True),
    sa.Column('custodian_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_shipments_created_by_id_users')),
    sa.ForeignKeyConstraint(['custodian_id'], ['users.id'], name=op.f('fk_shipments_custodian_id_users')),
    sa.ForeignKeyConstraint(['from_site_id'], ['sites.id'], name=op.f('fk_shipments_from_site_id_sites')),
    sa.ForeignKeyConstraint(['to_site_id'], ['sites.id'], name=op.f('fk_shipments_to_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shipments')),
    sa.UniqueConstraint('sscc', name=op.f('uq_shipments_sscc'))
    )
    with op.batch_alter_table('shipments', schema=None) as batch_op:
        batch_op.create_index('ix_shipments_status', ['status'], unique=False)

    op.create_table('handoffs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shipment_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('giver_id', sa.Integer(), nullable=False),
    sa.Column('taker_id', sa.Integer(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('signed', sa.Boolean(), nullable=False),
    sa.Column('event_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['giver_id'], ['users.id'], name=op.f('fk_handoffs_giver_id_users')),
    sa.ForeignKeyConstraint(['shipment_id'], ['shipments.id'], name=op.f('fk_handoffs_shipment_id_shipments')),
    sa.ForeignKeyConstraint(['taker_id'], ['users.id'], name=op.f('fk_handoffs_taker_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handoffs')),
    sa.UniqueConstraint('shipment_id', 'number', name=op.f('uq_handoffs_shipment_id_number'))
    )
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_handoffs_shipment_id'), ['shipment_id'], unique=False)

    op.create_table('receipts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shipment_id', sa.Integer(), nullable=False),
    sa.Column('received_by_id', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('seal_number', sa.String(length=40), nullable=False),
    sa.Column('reconciliation', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('event_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['received_by_id'], ['users.id'], name=op.f('fk_receipts_received_by_id_users')),
    sa.ForeignKeyConstraint(['shipment_id'], ['shipments.id'], name=op.f('fk_receipts_shipment_id_shipments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_receipts')),
    sa.UniqueConstraint('shipment_id', name=op.f('uq_receipts_shipment_id'))
    )
    op.create_table('shipment_vials',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('shipment_id', sa.Integer(), nullable=False),
    sa.Column('vial_id', sa.Integer(), nullable=False),
    sa.Column('packed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('unpacked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['shipment_id'], ['shipments.id'], name=op.f('fk_shipment_vials_shipment_id_shipments')),
    sa.ForeignKeyConstraint(['vial_id'], ['vials.id'], name=op.f('fk_shipment_vials_vial_id_vials')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shipment_vials')),
    sa.UniqueConstraint('shipment_id', 'vial_id', 'packed_at', name=op.f('uq_shipment_vials_shipment_id_vial_id_packed_at'))
    )
    with op.batch_alter_table('shipment_vials', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shipment_vials_shipment_id'), ['shipment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_shipment_vials_vial_id'), ['vial_id'], unique=False)
    create_append_only_triggers(op, APPEND_ONLY)


def downgrade() -> None:
    drop_append_only_triggers(op, APPEND_ONLY)
    with op.batch_alter_table('shipment_vials', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shipment_vials_vial_id'))
        batch_op.drop_index(batch_op.f('ix_shipment_vials_shipment_id'))

    op.drop_table('shipment_vials')
    op.drop_table('receipts')
    with op.batch_alter_table('handoffs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_handoffs_shipment_id'))

    op.drop_table('handoffs')
    with op.batch_alter_table('shipments', schema=None) as batch_op:
        batch_op.drop_index('ix_shipments_status')

    op.drop_table('shipments')
