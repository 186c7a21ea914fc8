"""Trials, subjects, randomization lists, kits and allocations; bedside checks and
administrations.

Bedside checks, administrations and unblindings are append-only, like the ledger they index.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 14:10:59.898057
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from app.migrate import create_append_only_triggers, drop_append_only_triggers
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
APPEND_ONLY = ("bedside_checks", "administrations", "unblindings")

branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('trials',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('protocol_id', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('phase', sa.String(length=32), nullable=False),
    sa.Column('sponsor', sa.String(length=200), nullable=False),
    sa.Column('blinded', sa.Boolean(), nullable=False),
    sa.Column('blinded_gtin', sa.String(length=14), nullable=True),
    sa.Column('blinded_name', sa.String(length=200), nullable=True),
    sa.Column('randomization_seed', sa.String(length=64), nullable=True),
    sa.Column('block_multipliers', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('planned_subjects', sa.Integer(), nullable=True),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trials')),
    sa.UniqueConstraint('blinded_gtin', name=op.f('uq_trials_blinded_gtin')),
    sa.UniqueConstraint('protocol_id', name=op.f('uq_trials_protocol_id'))
    )
    op.create_table('arms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trial_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('ratio', sa.Integer(), nullable=False),
    sa.Column('control', sa.Boolean(), nullable=False),
    sa.Column('route', sa.String(length=32), nullable=False),
    sa.Column('cells_per_dose', sa.BigInteger(), nullable=True),
    sa.Column('cells_per_kg', sa.BigInteger(), nullable=True),
    sa.Column('volume_ml', sa.Numeric(precision=8, scale=2), nullable=True),
    sa.Column('doses', sa.Integer(), nullable=False),
    sa.CheckConstraint('doses >= 1', name=op.f('ck_arms_doses_positive')),
    sa.CheckConstraint('ratio >= 1', name=op.f('ck_arms_ratio_positive')),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.id'], name=op.f('fk_arms_trial_id_trials')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_arms')),
    sa.UniqueConstraint('trial_id', 'code', name=op.f('uq_arms_trial_id_code'))
    )
    op.create_table('trial_sites',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trial_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('pharmacy_site_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['pharmacy_site_id'], ['sites.id'], name=op.f('fk_trial_sites_pharmacy_site_id_sites')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_trial_sites_site_id_sites')),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.id'], name=op.f('fk_trial_sites_trial_id_trials')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trial_sites')),
    sa.UniqueConstraint('trial_id', 'site_id', name=op.f('uq_trial_sites_trial_id_site_id'))
    )
    with op.batch_alter_table('trial_sites', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_trial_sites_trial_id'), ['trial_id'], unique=False)

    op.create_table('visits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trial_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('window_before_days', sa.Integer(), nullable=False),
    sa.Column('window_after_days', sa.Integer(), nullable=False),
    sa.CheckConstraint('window_before_days >= 0 AND window_after_days >= 0', name=op.f('ck_visits_window')),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.id'], name=op.f('fk_visits_trial_id_trials')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visits')),
    sa.UniqueConstraint('trial_id', 'number', name=op.f('uq_visits_trial_id_number'))
    )
    op.create_table('arm_products',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('arm_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['arm_id'], ['arms.id'], name=op.f('fk_arm_products_arm_id_arms')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_arm_products_product_id_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_arm_products')),
    sa.UniqueConstraint('arm_id', 'product_id', name=op.f('uq_arm_products_arm_id_product_id'))
    )
    op.create_table('subjects',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trial_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('wristband', sa.String(length=64), nullable=False),
    sa.Column('contraindications', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('weight_kg', sa.Numeric(precision=6, scale=2), nullable=True),
    sa.Column('day_one', sa.Date(), nullable=True),
    sa.Column('arm_id', sa.Integer(), nullable=True),
    sa.Column('randomized_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('enrolled_by', sa.String(length=64), nullable=False),
    sa.Column('enrolled_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['arm_id'], ['arms.id'], name=op.f('fk_subjects_arm_id_arms')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_subjects_site_id_sites')),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.id'], name=op.f('fk_subjects_trial_id_trials')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subjects')),
    sa.UniqueConstraint('trial_id', 'code', name=op.f('uq_subjects_trial_id_code')),
    sa.UniqueConstraint('wristband', name=op.f('uq_subjects_wristband'))
    )
    with op.batch_alter_table('subjects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subjects_site_id'), ['site_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_subjects_trial_id'), ['trial_id'], unique=False)

    op.create_table('randomization_slots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trial_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('block', sa.Integer(), nullable=False),
    sa.Column('block_size', sa.Integer(), nullable=False),
    sa.Column('arm_id', sa.Integer(), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=True),
    sa.Column('assigned_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['arm_id'], ['arms.id'], name=op.f('fk_randomization_slots_arm_id_arms')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_randomization_slots_site_id_sites')),
    sa.ForeignKeyConstraint(['subject_id'], ['subjects.id'], name=op.f('fk_randomization_slots_subject_id_subjects')),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.id'], name=op.f('fk_randomization_slots_trial_id_trials')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_randomization_slots')),
    sa.UniqueConstraint('subject_id', name=op.f('uq_randomization_slots_subject_id')),
    sa.UniqueConstraint('trial_id', 'site_id', 'sequence', name=op.f('uq_randomization_slots_trial_id_site_id_sequence'))
    )
    with op.batch_alter_table('randomization_slots', schema=None) as batch_op:
        batch_op.create_index('ix_randomization_slots_free', ['trial_id', 'site_id', 'subject_id'], unique=False)

    op.create_table('unblindings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=False),
    sa.Column('by_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('event_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['by_id'], ['users.id'], name=op.f('fk_unblindings_by_id_users')),
    sa.ForeignKeyConstraint(['subject_id'], ['subjects.id'], name=op.f('fk_unblindings_subject_id_subjects')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_unblindings')),
    sa.UniqueConstraint('subject_id', name=op.f('uq_unblindings_subject_id'))
    )
    op.create_table('kits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('trial_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('packaging_lot', sa.String(length=20), nullable=False),
    sa.Column('arm_id', sa.Integer(), nullable=False),
    sa.Column('vial_id', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['arm_id'], ['arms.id'], name=op.f('fk_kits_arm_id_arms')),
    sa.ForeignKeyConstraint(['trial_id'], ['trials.id'], name=op.f('fk_kits_trial_id_trials')),
    sa.ForeignKeyConstraint(['vial_id'], ['vials.id'], name=op.f('fk_kits_vial_id_vials')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kits')),
    sa.UniqueConstraint('trial_id', 'number', name=op.f('uq_kits_trial_id_number')),
    sa.UniqueConstraint('vial_id', name=op.f('uq_kits_vial_id'))
    )
    with op.batch_alter_table('kits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_kits_trial_id'), ['trial_id'], unique=False)

    op.create_table('allocations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=False),
    sa.Column('vial_id', sa.Integer(), nullable=True),
    sa.Column('kit_id', sa.Integer(), nullable=True),
    sa.Column('lot_id', sa.Integer(), nullable=True),
    sa.Column('allocated_by_id', sa.Integer(), nullable=False),
    sa.Column('allocated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('event_hash', sa.String(length=64), nullable=False),
    sa.CheckConstraint('vial_id IS NOT NULL OR lot_id IS NOT NULL', name=op.f('ck_allocations_allocates_vial_or_lot')),
    sa.ForeignKeyConstraint(['allocated_by_id'], ['users.id'], name=op.f('fk_allocations_allocated_by_id_users')),
    sa.ForeignKeyConstraint(['kit_id'], ['kits.id'], name=op.f('fk_allocations_kit_id_kits')),
    sa.ForeignKeyConstraint(['lot_id'], ['lots.id'], name=op.f('fk_allocations_lot_id_lots')),
    sa.ForeignKeyConstraint(['subject_id'], ['subjects.id'], name=op.f('fk_allocations_subject_id_subjects')),
    sa.ForeignKeyConstraint(['vial_id'], ['vials.id'], name=op.f('fk_allocations_vial_id_vials')),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_allocations_visit_id_visits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_allocations')),
    sa.UniqueConstraint('kit_id', name=op.f('uq_allocations_kit_id')),
    sa.UniqueConstraint('subject_id', 'visit_id', name=op.f('uq_allocations_subject_id_visit_id')),
    sa.UniqueConstraint('vial_id', name=op.f('uq_allocations_vial_id'))
    )
    with op.batch_alter_table('allocations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_allocations_subject_id'), ['subject_id'], unique=False)

    op.create_table('bedside_checks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sa.String(length=32), nullable=False),
    sa.Column('outcome', sa.String(length=8), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=True),
    sa.Column('vial_id', sa.Integer(), nullable=True),
    sa.Column('kit_id', sa.Integer(), nullable=True),
    sa.Column('visit_id', sa.Integer(), nullable=True),
    sa.Column('checks', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('checked_by_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('event_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['checked_by_id'], ['users.id'], name=op.f('fk_bedside_checks_checked_by_id_users')),
    sa.ForeignKeyConstraint(['kit_id'], ['kits.id'], name=op.f('fk_bedside_checks_kit_id_kits')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_bedside_checks_site_id_sites')),
    sa.ForeignKeyConstraint(['subject_id'], ['subjects.id'], name=op.f('fk_bedside_checks_subject_id_subjects')),
    sa.ForeignKeyConstraint(['vial_id'], ['vials.id'], name=op.f('fk_bedside_checks_vial_id_vials')),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_bedside_checks_visit_id_visits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bedside_checks')),
    sa.UniqueConstraint('reference', name=op.f('uq_bedside_checks_reference'))
    )
    with op.batch_alter_table('bedside_checks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bedside_checks_subject_id'), ['subject_id'], unique=False)
        batch_op.create_index('ix_bedside_checks_vial_id', ['vial_id'], unique=False)

    op.create_table('administrations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('check_id', sa.Integer(), nullable=False),
    sa.Column('vial_id', sa.Integer(), nullable=False),
    sa.Column('subject_id', sa.Integer(), nullable=False),
    sa.Column('visit_id', sa.Integer(), nullable=True),
    sa.Column('administered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('route', sa.String(length=32), nullable=False),
    sa.Column('dose_cells', sa.BigInteger(), nullable=True),
    sa.Column('volume_ml', sa.Numeric(precision=8, scale=2), nullable=True),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('administered_by_id', sa.Integer(), nullable=False),
    sa.Column('witness_id', sa.Integer(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('event_hash', sa.String(length=64), nullable=False),
    sa.CheckConstraint('administered_by_id <> witness_id', name=op.f('ck_administrations_two_people')),
    sa.ForeignKeyConstraint(['administered_by_id'], ['users.id'], name=op.f('fk_administrations_administered_by_id_users')),
    sa.ForeignKeyConstraint(['check_id'], ['bedside_checks.id'], name=op.f('fk_administrations_check_id_bedside_checks')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_administrations_site_id_sites')),
    sa.ForeignKeyConstraint(['subject_id'], ['subjects.id'], name=op.f('fk_administrations_subject_id_subjects')),
    sa.ForeignKeyConstraint(['vial_id'], ['vials.id'], name=op.f('fk_administrations_vial_id_vials')),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_administrations_visit_id_visits')),
    sa.ForeignKeyConstraint(['witness_id'], ['users.id'], name=op.f('fk_administrations_witness_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_administrations')),
    sa.UniqueConstraint('check_id', name=op.f('uq_administrations_check_id')),
    sa.UniqueConstraint('subject_id', 'visit_id', name=op.f('uq_administrations_subject_id_visit_id')),
    sa.UniqueConstraint('vial_id', name=op.f('uq_administrations_vial_id'))
    )
    with op.batch_alter_table('administrations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_administrations_subject_id'), ['subject_id'], unique=False)
    create_append_only_triggers(op, APPEND_ONLY)


def downgrade() -> None:
    drop_append_only_triggers(op, APPEND_ONLY)
    with op.batch_alter_table('administrations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_administrations_subject_id'))

    op.drop_table('administrations')
    with op.batch_alter_table('bedside_checks', schema=None) as batch_op:
        batch_op.drop_index('ix_bedside_checks_vial_id')
        batch_op.drop_index(batch_op.f('ix_bedside_checks_subject_id'))

    op.drop_table('bedside_checks')
    with op.batch_alter_table('allocations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_allocations_subject_id'))

    op.drop_table('allocations')
    with op.batch_alter_table('kits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kits_trial_id'))

    op.drop_table('kits')
    op.drop_table('unblindings')
    with op.batch_alter_table('randomization_slots', schema=None) as batch_op:
        batch_op.drop_index('ix_randomization_slots_free')

    op.drop_table('randomization_slots')
    with op.batch_alter_table('subjects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subjects_trial_id'))
        batch_op.drop_index(batch_op.f('ix_subjects_site_id'))

    op.drop_table('subjects')
    op.drop_table('arm_products')
    op.drop_table('visits')
    with op.batch_alter_table('trial_sites', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_trial_sites_trial_id'))

    op.drop_table('trial_sites')
    op.drop_table('arms')
    op.drop_table('trials')
