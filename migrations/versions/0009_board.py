"""board: intervensi/teguran and their answers, report views, on-duty rosters, readiness alerts

Revision ID: 0009_board
Revises: 0010_rules (re-chained after rebasing onto main)
Create Date: 2026-12-04 22:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009_board'
down_revision: str | None = '0010_rules'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


OPEN_SQL = "status IN ('diterima', 'diverifikasi', 'didisposisikan', 'ditindaklanjuti')"


def upgrade() -> None:
    # The board's two GROUP BY agency scans, index-only on PostgreSQL (models.Report).
    op.create_index('ix_reports_board_open', 'reports', ['agency'],
                    postgresql_include=['status', 'next_due', 'disposed_at', 'disposition_due', 'followed_up_at',
                                        'followup_due'],
                    postgresql_where=sa.text(OPEN_SQL), sqlite_where=sa.text(OPEN_SQL))
    op.create_index('ix_reports_board_period', 'reports', ['agency', 'created_at'],
                    postgresql_include=['disposed_at', 'followed_up_at', 'followup_due'])

    op.create_table('coordination_actions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('agency', sa.String(length=32), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=True),
    sa.Column('coordinator', sa.String(length=32), nullable=True),
    sa.Column('author', sa.String(length=254), nullable=False),
    sa.Column('author_name', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_coordination_actions_agency_created', 'coordination_actions', ['agency', 'created_at'])
    op.create_index('ix_coordination_actions_report_id', 'coordination_actions', ['report_id'])

    op.create_table('coordination_answers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('action_id', sa.Integer(), nullable=False),
    sa.Column('author', sa.String(length=254), nullable=False),
    sa.Column('author_name', sa.String(length=128), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['action_id'], ['coordination_actions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('action_id')
    )

    op.create_table('report_views',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('report_id', 'user_id', name='uq_report_views_report_user')
    )
    op.create_index('ix_report_views_user_id', 'report_views', ['user_id'])

    op.create_table('roster_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agency', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('weekdays', sa.String(length=7), nullable=False),
    sa.Column('dates', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=254), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_roster_entries_agency', 'roster_entries', ['agency'])

    op.create_table('readiness_alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('condition', sa.String(length=32), nullable=False),
    sa.Column('agency', sa.String(length=32), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    op.create_index('ix_readiness_alerts_agency', 'readiness_alerts', ['agency'])
    op.create_index('ix_readiness_alerts_created_at', 'readiness_alerts', ['created_at'])


def downgrade() -> None:
    op.drop_index('ix_reports_board_period', table_name='reports')
    op.drop_index('ix_reports_board_open', table_name='reports')
    op.drop_table('readiness_alerts')
    op.drop_table('roster_entries')
    op.drop_table('report_views')
    op.drop_table('coordination_answers')
    op.drop_table('coordination_actions')
