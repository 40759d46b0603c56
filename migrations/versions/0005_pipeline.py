"""pipeline: outbox lanes, retry times and claims; flood control

Revision ID: 0005_pipeline
Revises: 0007_workspace
Create Date: 2026-11-30 00:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005_pipeline'
down_revision: str | None = '0007_workspace'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Replies to a citizen's own message go first (lane 0), then notifications (1).
REPLY_PURPOSES = ("ack", "status", "help", "reply", "stop")


def upgrade() -> None:
    with op.batch_alter_table('outbound_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lane', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))
    purposes = ", ".join(f"'{p}'" for p in REPLY_PURPOSES)
    op.execute(f"UPDATE outbound_messages SET lane = 0 WHERE inbound_id IS NOT NULL OR purpose IN ({purposes})")
    with op.batch_alter_table('outbound_messages', schema=None) as batch_op:
        batch_op.create_index('ix_outbound_claim', ['channel', 'lane', 'id'], unique=False,
                              postgresql_where=sa.text("state = 'queued'"),
                              sqlite_where=sa.text("state = 'queued'"))

    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('no_reply', sa.String(length=16), nullable=True))
        batch_op.create_index('ix_inbound_sender_received', ['sender', 'received_at'], unique=False)

    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('repeats', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('last_repeat_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_column('last_repeat_at')
        batch_op.drop_column('repeats')

    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_sender_received')
        batch_op.drop_column('no_reply')

    with op.batch_alter_table('outbound_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_outbound_claim')
        batch_op.drop_column('claimed_at')
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('lane')
