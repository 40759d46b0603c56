"""rules: backtests of a proposed prefixes.yaml, and the changes written from the rules page

Revision ID: 0010_rules
Revises: 0005_pipeline
Create Date: 2026-12-04 22:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010_rules'
down_revision: str | None = '0005_pipeline'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('rule_backtests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('actor', sa.String(length=254), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('rules_text', sa.Text(), nullable=False),
    sa.Column('base_text', sa.Text(), nullable=False),
    sa.Column('base_version', sa.String(length=32), nullable=False),
    sa.Column('version', sa.String(length=32), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_rule_backtests_created_at', 'rule_backtests', ['created_at'])
    op.create_table('rule_changes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('backtest_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=254), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('backup_path', sa.Text(), nullable=False),
    sa.Column('version_before', sa.String(length=32), nullable=False),
    sa.Column('version_after', sa.String(length=32), nullable=False),
    sa.Column('previous_text', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['backtest_id'], ['rule_backtests.id'], ),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('rule_changes')
    op.drop_index('ix_rule_backtests_created_at', table_name='rule_backtests')
    op.drop_table('rule_backtests')
