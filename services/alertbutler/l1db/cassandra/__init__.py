"""The L1 database on Apache Cassandra: ``cassandra://host[,host...]/keyspace`` URLs open a
:class:`CassandraL1db` through :class:`alertbutler.l1db.L1db`, and :class:`CassandraCluster`
runs a local cluster of N nodes from Maven Central jars (``alertbutler l1db server``).

The driver (``cassandra-driver``, the ``cassandra`` extra) is imported only when a cluster is
contacted, so SQL users need not install it.
"""

from alertbutler.l1db.cassandra.cluster import (
    CASSANDRA_VERSION,
    CassandraCluster,
    CassandraError,
    unavailable_reason,
)
from alertbutler.l1db.cassandra.db import CassandraL1db, parse_url

__all__ = ["CASSANDRA_VERSION", "CassandraCluster", "CassandraError", "CassandraL1db",
           "parse_url", "unavailable_reason"]
