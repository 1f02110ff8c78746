"""The registry's tables, declared once with SQLAlchemy Core (no ORM: the hot path is
a handful of prepared statements).

Data IDs live in the ``dataset`` table twice: as the canonical ``data_id`` key string
(``instrument=X,detector=5,visit=7``: one unique constraint per type and run, whatever the
dimensions) and as one nullable column per dimension (for constraints, joins to dimension
records for time and region queries, and for humans reading the database).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..dimensions import DimensionUniverse

#: bump when a table changes; opening a repo with another version is a clear error
SCHEMA_VERSION = "1"

_SQL_TYPES: dict[type, sa.types.TypeEngine] = {
    int: sa.BigInteger(), str: sa.String(128), float: sa.Float(), bool: sa.Boolean()}


def dim_column(universe: DimensionUniverse, name: str, **kw: Any) -> sa.Column:
    return sa.Column(name, _SQL_TYPES[universe[name].key_type], **kw)


def build(universe: DimensionUniverse) -> tuple[sa.MetaData, dict[str, sa.Table]]:
    md = sa.MetaData()
    t: dict[str, sa.Table] = {}
    t["attributes"] = sa.Table(
        "butler_attributes", md,
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False))
    t["collection"] = sa.Table(
        "collection", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False, unique=True),
        sa.Column("type", sa.SmallInteger, nullable=False),
        sa.Column("doc", sa.Text, nullable=False, default=""))
    t["collection_chain"] = sa.Table(
        "collection_chain", md,
        sa.Column("parent", sa.Integer, primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("child", sa.Integer, nullable=False))
    t["dataset_type"] = sa.Table(
        "dataset_type", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("dimensions", sa.String(256), nullable=False),
        sa.Column("storage_class", sa.String(64), nullable=False),
        sa.Column("is_calibration", sa.Boolean, nullable=False))
    dim_cols = [dim_column(universe, d.name, nullable=True) for d in universe]
    t["dataset"] = sa.Table(
        "dataset", md,
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("dataset_type_id", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("data_id", sa.String(512), nullable=False),
        sa.Column("ingest_ns", sa.BigInteger, nullable=False),
        *dim_cols,
        sa.UniqueConstraint("dataset_type_id", "run_id", "data_id", name="dataset_unique"),
        sa.Index("dataset_by_type_data_id", "dataset_type_id", "data_id"),
        sa.Index("dataset_by_run", "run_id"))
    t["dataset_tag"] = sa.Table(
        "dataset_tag", md,
        sa.Column("collection_id", sa.Integer, primary_key=True),
        sa.Column("dataset_id", sa.Uuid, primary_key=True),
        sa.Column("dataset_type_id", sa.Integer, nullable=False),
        sa.Column("data_id", sa.String(512), nullable=False),
        sa.UniqueConstraint("collection_id", "dataset_type_id", "data_id", name="tag_unique"))
    t["dataset_calib"] = sa.Table(
        "dataset_calib", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("collection_id", sa.Integer, nullable=False),
        sa.Column("dataset_id", sa.Uuid, nullable=False),
        sa.Column("dataset_type_id", sa.Integer, nullable=False),
        sa.Column("data_id", sa.String(512), nullable=False),
        sa.Column("begin_ns", sa.BigInteger, nullable=False),
        sa.Column("end_ns", sa.BigInteger, nullable=False),
        sa.Index("calib_lookup", "collection_id", "dataset_type_id", "data_id"))
    t["datastore_record"] = sa.Table(
        "datastore_record", md,
        sa.Column("dataset_id", sa.Uuid, primary_key=True),
        sa.Column("datastore", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("payload", sa.Text, nullable=False))
    for dim in universe:
        if not dim.has_table:
            continue
        cols = [dim_column(universe, n, primary_key=True) for n in (*dim.requires, dim.name)]
        cols += [dim_column(universe, n, nullable=True) for n in dim.implies]
        cols += [sa.Column(n, _SQL_TYPES[tp], nullable=True) for n, tp in dim.metadata]
        if dim.has_timespan:
            cols += [sa.Column("timespan_begin", sa.BigInteger, nullable=True),
                     sa.Column("timespan_end", sa.BigInteger, nullable=True)]
        if dim.has_region:
            cols += [sa.Column("ra", sa.Float, nullable=True),
                     sa.Column("dec", sa.Float, nullable=True),
                     sa.Column("radius", sa.Float, nullable=True)]
        t[dim.name] = sa.Table(f"dim_{dim.name}", md, *cols)
        if dim.has_region:
            t[f"{dim.name}_skypix"] = sa.Table(
                f"dim_{dim.name}_skypix", md,
                *[dim_column(universe, n, nullable=False) for n in (*dim.requires, dim.name)],
                sa.Column("pix_begin", sa.BigInteger, nullable=False),
                sa.Column("pix_end", sa.BigInteger, nullable=False),
                sa.Index(f"{dim.name}_skypix_range", "pix_begin", "pix_end"))
    return md, t
