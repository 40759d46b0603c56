"""desk and operations: inbound messages by time received

The operations page and /metrics count the messages received per minute over
the last hour (the surge rate) and the newest one processed; without an index on
``received_at`` each scrape would read the whole table.

Revision ID: 0008_desk
Revises: 0009_board
Create Date: 2026-12-04 22:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0008_desk'
down_revision: str | None = '0009_board'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.create_index('ix_inbound_received', ['received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inbound_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_received')
