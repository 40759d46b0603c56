"""routing feedback: labelled examples recorded when a person re-routes a report

Revision ID: 0004_routing
Revises: 0002
Create Date: 2026-11-30 00:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004_routing'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('labelled_examples',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('agency', sa.String(length=32), nullable=False),
    sa.Column('previous_agency', sa.String(length=32), nullable=True),
    sa.Column('decided_by', sa.String(length=16), nullable=True),
    sa.Column('rules_agency', sa.String(length=32), nullable=True),
    sa.Column('source', sa.String(length=24), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('labelled_examples', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_labelled_examples_agency'), ['agency'], unique=False)
        batch_op.create_index(batch_op.f('ix_labelled_examples_created_at'), ['created_at'], unique=False)
        batch_op.create_index('ix_labelled_examples_report_created', ['report_id', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('labelled_examples', schema=None) as batch_op:
        batch_op.drop_index('ix_labelled_examples_report_created')
        batch_op.drop_index(batch_op.f('ix_labelled_examples_created_at'))
        batch_op.drop_index(batch_op.f('ix_labelled_examples_agency'))
    op.drop_table('labelled_examples')
