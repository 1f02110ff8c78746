"""Reusable test support: throw-away PostgreSQL databases, broker engines.

Shipped in the package (as daf_butler ships its test-repo helpers) so that tests, benchmarks
and downstream projects build the same fixtures the same way.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

#: Server used for throw-away databases; override with TEST_PG_URL.
DEFAULT_PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def pg_admin_url() -> str:
    return os.environ.get("TEST_PG_URL", DEFAULT_PG_ADMIN_URL)


def pg_unreachable_reason(admin_url: str | None = None) -> str | None:
    """Why no PostgreSQL server can be used, or None when one answers."""
    import sqlalchemy as sa

    url = admin_url or pg_admin_url()
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"no PostgreSQL server reachable at {url}: {type(exc).__name__}: {exc}"
    return None


@contextlib.contextmanager
def temporary_pg_database(prefix: str = "alertbutler_test",
                          admin_url: str | None = None) -> Iterator[str]:
    """Create a uniquely named database, yield its SQLAlchemy URL, then drop it."""
    import sqlalchemy as sa

    admin = sa.engine.make_url(admin_url or pg_admin_url())
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def kafka_unavailable_reason() -> str | None:
    """Why Apache Kafka cannot run here (no Java, or jars neither cached nor resolvable), or
    None when it can. Resolving the jars is done here, once, so the reason is exact."""
    from alertbutler.broker import BrokerError, kafka_classpath
    from alertbutler.jvm import JvmError, java_binary

    try:
        java_binary(17)
        kafka_classpath()
    except (BrokerError, JvmError) as exc:
        return f"Apache Kafka cannot run here: {exc}"
    return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie answers ``kill(0)`` but runs no more)."""
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False
