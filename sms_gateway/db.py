"""Database engine and sessions (SQLAlchemy 2.x)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
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
