"""workspace: users, sessions, password links, canned answers, internal notes, the inbox's deadline column

Revision ID: 0007_workspace
Revises: 0004_routing
Create Date: 2026-11-30 00:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sms_gateway.models import NEXT_DUE_SQL

revision: str = '0007_workspace'
down_revision: str | None = '0004_routing'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('agency', sa.String(length=32), nullable=True),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('password_changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('disabled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.String(length=254), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email')
    )
    op.create_index('ix_users_agency', 'users', ['agency'])

    op.create_table('user_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('realm', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_index('ix_user_sessions_user_id', 'user_sessions', ['user_id'])

    op.create_table('password_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_index('ix_password_links_user_id', 'password_links', ['user_id'])

    op.create_table('canned_answers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('agency', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('title', sa.String(length=80), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('updated_by', sa.String(length=254), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_canned_answers_agency', 'canned_answers', ['agency'])

    op.create_table('report_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('author', sa.String(length=254), nullable=False),
    sa.Column('agency', sa.String(length=32), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_report_notes_report_id', 'report_notes', ['report_id'])

    # A workspace user is named in the history, and in the labelled examples a
    # disposition records, by e-mail address (up to 254 characters).
    for table in ('report_events', 'labelled_examples'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('actor', existing_type=sa.String(length=64), type_=sa.String(length=254),
                                  existing_nullable=False)

    # The inbox sorts by the nearest deadline and pages by (next_due, id): a
    # generated column (every writer keeps it right) and two indexes, measured
    # by bench/workspace.py over 100,000 reports (docs/BENCHMARKS.md):
    # - (agency, next_due, id): an agency's inbox (agency IN its units) reads its
    #   first page in deadline order from the index instead of sorting every row;
    # - (next_due, id): the central admin's inbox over every agency, likewise.
    # SQLite cannot ADD a stored generated column: the batch recreates the table there.
    recreate = 'always' if op.get_bind().dialect.name == 'sqlite' else 'auto'
    with op.batch_alter_table('reports', schema=None, recreate=recreate) as batch_op:
        batch_op.add_column(sa.Column('next_due', sa.Date(), sa.Computed(NEXT_DUE_SQL, persisted=True),
                                      nullable=True))
        batch_op.create_index('ix_reports_agency_next_due', ['agency', 'next_due', 'id'])
        batch_op.create_index('ix_reports_next_due', ['next_due', 'id'])

    # Search by words of the text is ILIKE '%…%', which no B-tree serves: on
    # PostgreSQL a trigram GIN index does (100,000 reports: bench/workspace.py).
    # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may
    # create it. Where that is refused the search still works, by a scan.
    bind = op.get_bind()
    if bind.dialect.name == 'postgresql':
        savepoint = bind.begin_nested()
        try:
            op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
            op.execute('CREATE INDEX ix_reports_text_trgm ON reports USING gin (text gin_trgm_ops)')
            savepoint.commit()
        except sa.exc.DBAPIError as exc:
            savepoint.rollback()
            print(f'0007_workspace: no trigram index for the workspace search ({exc.orig}); '
                  'searching by text scans the reports')


def downgrade() -> None:
    op.execute('DROP INDEX IF EXISTS ix_reports_text_trgm')
    recreate = 'always' if op.get_bind().dialect.name == 'sqlite' else 'auto'
    with op.batch_alter_table('reports', schema=None, recreate=recreate) as batch_op:
        batch_op.drop_index('ix_reports_next_due')
        batch_op.drop_index('ix_reports_agency_next_due')
        batch_op.drop_column('next_due')
    for table in ('report_events', 'labelled_examples'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('actor', existing_type=sa.String(length=254), type_=sa.String(length=64),
                                  existing_nullable=False)
    op.drop_table('report_notes')
    op.drop_table('canned_answers')
    op.drop_table('password_links')
    op.drop_table('user_sessions')
    op.drop_table('users')
