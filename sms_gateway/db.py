"""Database engine and sessions (SQLAlchemy 2.x)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, create_engine, event, insert, inspect, text, update
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from .config import PACKAGE_DIR, PROJECT_ROOT


class Base(DeclarativeBase):
    """Declarative base of every model."""


_ENGINES: dict[str, Engine] = {}


def get_engine(url: str) -> Engine:
    """One engine per URL per process (engines pool connections)."""
    engine = _ENGINES.get(url)
    if engine is None:
        engine = _ENGINES[url] = _create(url)
    return engine


def _create(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # WAL lets the web process write while the worker reads; the busy
            # timeout makes concurrent writers wait instead of failing.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    # No pre-ping: it costs a round trip per transaction. A connection dropped by
    # a database restart fails one transaction (the provider or RQ retries it)
    # and SQLAlchemy then replaces the whole pool.
    # connect_timeout: a database host that does not answer fails a connection
    # in seconds (webhooks then spool), instead of hanging on the OS's TCP timeout.
    return create_engine(url, pool_size=10, max_overflow=10, pool_recycle=1800,
                         connect_args={"connect_timeout": 5})


_AUTOCOMMIT: dict[Engine, Engine] = {}


def autocommit_of(engine: Engine) -> Engine:
    """``engine`` with its connections in autocommit (the same pool): a single statement
    is its own transaction, statement and COMMIT in one round trip."""
    proxy = _AUTOCOMMIT.get(engine)
    if proxy is None:
        proxy = _AUTOCOMMIT[engine] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return proxy


def execute_autocommit(engine: Engine, sql: str, params: Sequence[Any] | Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Run one statement (psycopg's placeholders) in autocommit on a PostgreSQL ``engine``'s
    driver connection; its rows. For the statements of the hot paths: constant text
    that psycopg prepares once, no SQLAlchemy compilation, statement and COMMIT in one round trip."""
    with autocommit_of(engine).connect() as conn:
        driver = conn.connection.driver_connection
        assert driver is not None
        cursor = driver.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


@lru_cache(maxsize=8)
def _factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


def session_factory(url: str) -> sessionmaker[Session]:
    """Session factory bound to the engine of ``url``."""
    return _factory(url)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = _factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def dispose_engines() -> None:
    """Drop pooled connections (after fork, and between tests)."""
    for engine in _ENGINES.values():
        engine.dispose()


# --------------------------------------------------------------------------- migrations

def migrations_dir() -> Path:
    """The Alembic scripts: inside the installed package (the wheel carries them there),
    else the checkout's top-level ``migrations/``."""
    packaged = PACKAGE_DIR / "migrations"
    return packaged if (packaged / "env.py").is_file() else PROJECT_ROOT / "migrations"


def alembic_config(url: str) -> Any:
    """Alembic's configuration for ``url``, without alembic.ini (not installed with the package)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg


@lru_cache(maxsize=1)
def _revisions() -> tuple[str | None, frozenset[str]]:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(migrations_dir()))
    return scripts.get_current_head(), frozenset(r.revision for r in scripts.walk_revisions())


def head_revision() -> str | None:
    """The latest migration this code ships."""
    return _revisions()[0]


def pending_migrations(conn: Connection) -> str | None:
    """Why the schema behind ``conn`` is not the one this code needs, or None when it is."""
    # Read alembic_version directly: MigrationContext announces itself at INFO on every call.
    current = (conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
               if inspect(conn).has_table("alembic_version") else None)
    head, known = _revisions()
    if current == head:
        return None
    if current is not None and current not in known:
        return f"database at revision {current}, which this code does not know (newer code migrated it?)"
    return (f"migrations pending (database at {current or 'an empty schema'}, code needs {head}): "
            "run sms-gateway db upgrade")


def insert_rows(session: Session, table: Table, rows: list[dict[str, Any]],
                returning: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    """INSERT ``rows`` (dicts with the same keys) in the session's transaction with one statement.

    On PostgreSQL the rows travel as one JSON document read by
    ``json_to_recordset`` (as ingest stores messages): the statement text is
    the same whatever the batch size, so psycopg parses and prepares it once,
    where a multi-row VALUES list is new text, parsed again, for every batch.
    """
    if not rows:
        return []
    columns = list(rows[0])
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        stmt = insert(table)
        if returning:
            return [tuple(r) for r in session.execute(stmt.returning(*(table.c[c] for c in returning),
                                                                      sort_by_parameter_order=True), rows)]
        session.execute(stmt, rows)
        return []
    # Every name below is one of the table's own columns (table.c raises on anything else).
    types = _recordset_columns(table, columns, dialect)
    names = ", ".join(table.c[c].name for c in columns)
    returned = ", ".join(table.c[c].name for c in returning)
    sql = (f"INSERT INTO {table.name} ({names}) SELECT {names} "  # noqa: S608 - names from the table
           f"FROM json_to_recordset(%s::json) AS t({types})" + (f" RETURNING {returned}" if returning else ""))
    result = session.connection().exec_driver_sql(sql, (json.dumps(rows, default=json_default),))
    return [tuple(r) for r in result] if returning else []


def update_rows(session: Session, table: Table, rows: list[dict[str, Any]], key: str = "id") -> None:
    """UPDATE each row of ``table`` whose ``key`` is a row's ``key`` with that row's other values,
    in the session's transaction: one statement on PostgreSQL (the rows as one JSON
    document, as ``insert_rows``), one executemany elsewhere."""
    if not rows:
        return
    columns = [c for c in rows[0] if c != key]
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        session.connection().execute(
            update(table).where(table.c[key] == bindparam(f"b_{key}"))
            .values({c: bindparam(f"b_{c}", type_=table.c[c].type) for c in columns}),
            [{f"b_{c}": v for c, v in row.items()} for row in rows])
        return
    types = _recordset_columns(table, [key, *columns], dialect)
    assignments = ", ".join(f"{table.c[c].name} = t.{table.c[c].name}" for c in columns)
    sql = (f"UPDATE {table.name} SET {assignments} "  # noqa: S608 - names from the table
           f"FROM json_to_recordset(%s::json) AS t({types}) WHERE {table.name}.{key} = t.{key}")
    session.connection().exec_driver_sql(sql, (json.dumps(rows, default=json_default),))


def _recordset_columns(table: Table, columns: list[str], dialect: Any) -> str:
    """The column list of ``json_to_recordset(…) AS t(…)`` for these columns of ``table``."""
    return ", ".join(f"{table.c[c].name} {table.c[c].type.compile(dialect)}" for c in columns)


def json_default(value: object) -> str:
    """``json.dumps(..., default=json_default)``: dates and datetimes as ISO 8601, as PostgreSQL reads them."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
