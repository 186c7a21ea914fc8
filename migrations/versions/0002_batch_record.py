"""Batch record: donors, cell banks, lots, vials, QC results, deviations, release decisions.

QC results and release decisions are append-only, like the ledger: a correction is a new
result that supersedes the old one.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:36:50.099121
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.migrate import create_append_only_triggers, drop_append_only_triggers


APPEND_ONLY = ("qc_results", "release_decisions")

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('donors',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('eligibility', sa.String(length=16), nullable=False),
    sa.Column('eligibility_note', sa.Text(), nullable=False),
    sa.Column('determined_by', sa.String(length=64), nullable=True),
    sa.Column('determined_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_donors')),
    sa.UniqueConstraint('code', name=op.f('uq_donors_code'))
    )
    op.create_table('cell_banks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('description', sa.String(length=300), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('donor_id', sa.Integer(), nullable=True),
    sa.Column('passage', sa.Integer(), nullable=True),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['donor_id'], ['donors.id'], name=op.f('fk_cell_banks_donor_id_donors')),
    sa.ForeignKeyConstraint(['parent_id'], ['cell_banks.id'], name=op.f('fk_cell_banks_parent_id_cell_banks')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_cell_banks_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cell_banks')),
    sa.UniqueConstraint('code', name=op.f('uq_cell_banks_code'))
    )
    with op.batch_alter_table('cell_banks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cell_banks_donor_id'), ['donor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cell_banks_parent_id'), ['parent_id'], unique=False)

    op.create_table('lots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('product_version_id', sa.Integer(), nullable=False),
    sa.Column('bank_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('qc_site_id', sa.Integer(), nullable=True),
    sa.Column('manufacture_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('manufacture_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=False),
    sa.Column('vials_filled', sa.Integer(), nullable=False),
    sa.Column('cells_per_vial', sa.BigInteger(), nullable=False),
    sa.Column('volume_ml', sa.Numeric(precision=8, scale=2), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('donor_eligibility_justification', sa.Text(), nullable=True),
    sa.Column('exceptional_subject', sa.String(length=64), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('vials_filled >= 1', name=op.f('ck_lots_vials_filled_positive')),
    sa.ForeignKeyConstraint(['bank_id'], ['cell_banks.id'], name=op.f('fk_lots_bank_id_cell_banks')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_lots_created_by_id_users')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_lots_product_id_products')),
    sa.ForeignKeyConstraint(['product_version_id'], ['product_versions.id'], name=op.f('fk_lots_product_version_id_product_versions')),
    sa.ForeignKeyConstraint(['qc_site_id'], ['sites.id'], name=op.f('fk_lots_qc_site_id_sites')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_lots_site_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lots')),
    sa.UniqueConstraint('number', name=op.f('uq_lots_number'))
    )
    with op.batch_alter_table('lots', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lots_bank_id'), ['bank_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lots_product_id'), ['product_id'], unique=False)
        batch_op.create_index('ix_lots_status', ['status'], unique=False)

    op.create_table('deviations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lot_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('capa_reference', sa.String(length=64), nullable=True),
    sa.Column('raised_by_id', sa.Integer(), nullable=False),
    sa.Column('raised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_by_id', sa.Integer(), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closure_note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['closed_by_id'], ['users.id'], name=op.f('fk_deviations_closed_by_id_users')),
    sa.ForeignKeyConstraint(['lot_id'], ['lots.id'], name=op.f('fk_deviations_lot_id_lots')),
    sa.ForeignKeyConstraint(['raised_by_id'], ['users.id'], name=op.f('fk_deviations_raised_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deviations')),
    sa.UniqueConstraint('lot_id', 'number', name=op.f('uq_deviations_lot_id_number'))
    )
    with op.batch_alter_table('deviations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deviations_lot_id'), ['lot_id'], unique=False)

    op.create_table('qc_results',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lot_id', sa.Integer(), nullable=False),
    sa.Column('line_id', sa.Integer(), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.Column('numeric_value', sa.Numeric(precision=24, scale=8), nullable=True),
    sa.Column('unit', sa.String(length=32), nullable=True),
    sa.Column('method', sa.String(length=200), nullable=False),
    sa.Column('conformance', sa.String(length=16), nullable=False),
    sa.Column('analyst_id', sa.Integer(), nullable=False),
    sa.Column('tested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('supersedes_id', sa.Integer(), nullable=True),
    sa.Column('supersede_reason', sa.Text(), nullable=True),
    sa.Column('event_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['analyst_id'], ['users.id'], name=op.f('fk_qc_results_analyst_id_users')),
    sa.ForeignKeyConstraint(['line_id'], ['specification_lines.id'], name=op.f('fk_qc_results_line_id_specification_lines')),
    sa.ForeignKeyConstraint(['lot_id'], ['lots.id'], name=op.f('fk_qc_results_lot_id_lots')),
    sa.ForeignKeyConstraint(['supersedes_id'], ['qc_results.id'], name=op.f('fk_qc_results_supersedes_id_qc_results')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_qc_results')),
    sa.UniqueConstraint('supersedes_id', name=op.f('uq_qc_results_supersedes_id'))
    )
    with op.batch_alter_table('qc_results', schema=None) as batch_op:
        batch_op.create_index('ix_qc_results_lot_id_line_id', ['lot_id', 'line_id'], unique=False)

    op.create_table('release_decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lot_id', sa.Integer(), nullable=False),
    sa.Column('decision', sa.String(length=32), nullable=False),
    sa.Column('meaning', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('signer_id', sa.Integer(), nullable=False),
    sa.Column('signer_name', sa.String(length=200), nullable=False),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('subject_code', sa.String(length=64), nullable=True),
    sa.Column('physician_name', sa.String(length=200), nullable=True),
    sa.Column('physician_request_ref', sa.String(length=64), nullable=True),
    sa.Column('risk_evaluation', sa.Text(), nullable=True),
    sa.Column('recall_scope', sa.String(length=80), nullable=True),
    sa.Column('event_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['lot_id'], ['lots.id'], name=op.f('fk_release_decisions_lot_id_lots')),
    sa.ForeignKeyConstraint(['signer_id'], ['users.id'], name=op.f('fk_release_decisions_signer_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_release_decisions'))
    )
    with op.batch_alter_table('release_decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_release_decisions_lot_id'), ['lot_id'], unique=False)

    op.create_table('vials',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('serial', sa.String(length=20), nullable=False),
    sa.Column('lot_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['lot_id'], ['lots.id'], name=op.f('fk_vials_lot_id_lots')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vials')),
    sa.UniqueConstraint('lot_id', 'position', name=op.f('uq_vials_lot_id_position')),
    sa.UniqueConstraint('serial', name=op.f('uq_vials_serial'))
    )
    with op.batch_alter_table('vials', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vials_lot_id'), ['lot_id'], unique=False)


    create_append_only_triggers(op, APPEND_ONLY)

def downgrade() -> None:
    drop_append_only_triggers(op, APPEND_ONLY)
    with op.batch_alter_table('vials', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vials_lot_id'))

    op.drop_table('vials')
    with op.batch_alter_table('release_decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_release_decisions_lot_id'))

    op.drop_table('release_decisions')
    with op.batch_alter_table('qc_results', schema=None) as batch_op:
        batch_op.drop_index('ix_qc_results_lot_id_line_id')

    op.drop_table('qc_results')
    with op.batch_alter_table('deviations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deviations_lot_id'))

    op.drop_table('deviations')
    with op.batch_alter_table('lots', schema=None) as batch_op:
        batch_op.drop_index('ix_lots_status')
        batch_op.drop_index(batch_op.f('ix_lots_product_id'))
        batch_op.drop_index(batch_op.f('ix_lots_bank_id'))

    op.drop_table('lots')
    with op.batch_alter_table('cell_banks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cell_banks_parent_id'))
        batch_op.drop_index(batch_op.f('ix_cell_banks_donor_id'))

    op.drop_table('cell_banks')
    op.drop_table('donors')

