"""Archives to replay, built locally: ZTF-style nightly tarballs and Rubin-format files.

Nothing can be downloaded here, so tests and benchmarks write their own archives: a ZTF-like
schema (``ztf.alert``: objectId, candid, a candidate record, previous candidates and three
gzipped FITS cutouts, the shape of ZTF's public alert packets, written from scratch) and one
single-alert Avro container file per alert with its writer schema inside, named
``<candid>.avro``, as ZTF's nightly archive tarballs hold them.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import fastavro
import numpy as np

from alertbutler.replay.sources import JD_UNIX_EPOCH

_CANDIDATE_FIELDS: list[tuple[str, Any]] = [
    ("jd", "double"), ("fid", "int"), ("pid", "long"), ("diffmaglim", ["null", "float"]),
    ("programid", "int"), ("candid", "long"), ("isdiffpos", "string"),
    ("nid", ["null", "int"]), ("rcid", ["null", "int"]), ("field", ["null", "int"]),
    ("xpos", ["null", "float"]), ("ypos", ["null", "float"]), ("ra", "double"),
    ("dec", "double"), ("magpsf", "float"), ("sigmapsf", "float"),
    ("chipsf", ["null", "float"]), ("magap", ["null", "float"]),
    ("sigmagap", ["null", "float"]), ("distnr", ["null", "float"]),
    ("magnr", ["null", "float"]), ("fwhm", ["null", "float"]),
    ("rb", ["null", "float"]), ("drb", ["null", "float"]), ("ssdistnr", ["null", "float"]),
    ("ssnamenr", ["null", "string"]), ("ndethist", "int"), ("jdstarthist", ["null", "double"]),
    ("sgscore1", ["null", "float"]), ("magzpsci", ["null", "float"]),
]


def ztf_like_schema(version: str = "3.3") -> dict[str, Any]:
    """A ZTF-like alert schema (our own writing; the field names follow ZTF's packets)."""
    candidate = {"type": "record", "name": "candidate", "namespace": "ztf.alert",
                 "fields": [{"name": n, "type": t} for n, t in _CANDIDATE_FIELDS]}
    prv_fields = [{"name": n, "type": t if n in ("jd", "fid", "pid", "programid", "isdiffpos")
                   else (t if isinstance(t, list) else ["null", t]),
                   **({} if n in ("jd", "fid", "pid", "programid", "isdiffpos")
                      else {"default": None})}
                  for n, t in _CANDIDATE_FIELDS if n not in ("ndethist",)]
    prv = {"type": "record", "name": "prv_candidate", "namespace": "ztf.alert",
           "fields": prv_fields}
    cutout = {"type": "record", "name": "cutout", "namespace": "ztf.alert",
              "fields": [{"name": "fileName", "type": "string"},
                         {"name": "stampData", "type": "bytes"}]}
    return {
        "type": "record", "name": "alert", "namespace": "ztf", "doc": f"ZTF-like {version}",
        "fields": [
            {"name": "schemavsn", "type": "string"},
            {"name": "publisher", "type": "string"},
            {"name": "objectId", "type": "string"},
            {"name": "candid", "type": "long"},
            {"name": "candidate", "type": candidate},
            {"name": "prv_candidates", "type": ["null", {"type": "array", "items": prv}],
             "default": None},
            {"name": "cutoutScience", "type": ["null", cutout], "default": None},
            {"name": "cutoutTemplate", "type": ["null", "ztf.alert.cutout"], "default": None},
            {"name": "cutoutDifference", "type": ["null", "ztf.alert.cutout"],
             "default": None},
        ],
    }


def _stamp(rng: np.random.Generator, size: int) -> bytes:
    """A gzipped FITS stamp as ZTF ships them (a header and float32 noise)."""
    from astropy.io import fits

    buf = io.BytesIO()
    fits.PrimaryHDU(rng.normal(100.0, 5.0, (size, size)).astype(np.float32)).writeto(buf)
    return gzip.compress(buf.getvalue(), compresslevel=1, mtime=0)


def ztf_like_alerts(n: int, *, seed: int = 0, n_objects: int | None = None,
                    n_prv: int = 10, stamp_size: int = 31, jd0: float = 2461000.6,
                    spacing_s: float = 1.0) -> list[dict[str, Any]]:
    """``n`` ZTF-like alert records, ``spacing_s`` apart in jd, cycling over objects."""
    rng = np.random.default_rng(seed)
    n_objects = n_objects or max(1, n // 2)
    names = [f"ZTF26{chr(97 + i % 26)}{chr(97 + (i // 26) % 26)}{i:05d}" for i in
             range(n_objects)]
    stamps = [_stamp(rng, stamp_size) for _ in range(3)]
    out = []
    for i in range(n):
        obj = i % n_objects
        jd = jd0 + i * spacing_s / 86400.0
        candid = 3_000_000_000_000_000 + seed * 10**9 + i
        cand: dict[str, Any] = {name: None for name, _ in _CANDIDATE_FIELDS}
        cand.update(jd=jd, fid=int(1 + i % 3), pid=int(candid // 1000), programid=1,
                    candid=candid, isdiffpos="t", ra=float(10 + obj * 0.01),
                    dec=float(-5 + obj * 0.01), magpsf=float(rng.uniform(17, 20)),
                    sigmapsf=float(rng.uniform(0.02, 0.2)), rb=float(rng.uniform(0.5, 1)),
                    ndethist=int(i // n_objects + 1), diffmaglim=20.5)
        prv = [{"jd": jd - 3.0 * (k + 1), "fid": 1, "pid": 1, "programid": 1,
                "isdiffpos": "t", "magpsf": float(rng.uniform(17, 20)), "sigmapsf": 0.1,
                "candid": None if k % 2 else candid - 1000 * (k + 1),
                "ra": cand["ra"], "dec": cand["dec"]} for k in range(n_prv)]
        out.append({
            "schemavsn": "3.3", "publisher": "alertbutler-test", "objectId": names[obj],
            "candid": candid, "candidate": cand, "prv_candidates": prv,
            "cutoutScience": {"fileName": f"candid{candid}_sci.fits.gz", "stampData": stamps[0]},
            "cutoutTemplate": {"fileName": f"candid{candid}_ref.fits.gz",
                               "stampData": stamps[1]},
            "cutoutDifference": {"fileName": f"candid{candid}_diff.fits.gz",
                                 "stampData": stamps[2]},
        })
    return out


def write_single_alert_file(path: Path, schema: Mapping[str, Any], record: Mapping[str, Any],
                            codec: str = "null") -> None:
    """One alert in its own container file, writer schema inside (ZTF's archive layout)."""
    with open(path, "wb") as fh:
        fastavro.writer(fh, fastavro.parse_schema(dict(schema)), [record], codec=codec)


def write_ztf_archive(target: Path, records: Sequence[Mapping[str, Any]], *,
                      schema: Mapping[str, Any] | None = None, tarball: bool = True) -> Path:
    """Write ``records`` as ``<candid>.avro`` files in a directory, or a ``.tar.gz``.

    ``target`` is the directory, or the tarball's path (``.tar`` or ``.tar.gz``).
    """
    schema = schema or ztf_like_schema()
    parsed = fastavro.parse_schema(dict(schema))
    if not tarball:
        target.mkdir(parents=True, exist_ok=True)
        for rec in records:
            with open(target / f"{rec['candid']}.avro", "wb") as fh:
                fastavro.writer(fh, parsed, [rec], codec="null")
        return target
    mode: Literal["w:gz", "w"] = "w:gz" if target.name.endswith((".gz", ".tgz")) else "w"
    with tarfile.open(target, mode) as tar:
        for rec in records:
            buf = io.BytesIO()
            fastavro.writer(buf, parsed, [rec], codec="null")
            info = tarfile.TarInfo(f"{rec['candid']}.avro")
            info.size = buf.tell()
            info.mtime = 0
            buf.seek(0)
            tar.addfile(info, buf)
    return target


def jd_of_ms(ms: int) -> float:
    return ms / 86400_000.0 + JD_UNIX_EPOCH


def consume_all(bootstrap: str, topic: str, expected: int, *, timeout_s: float = 60.0,
                partitions: Iterable[int] | None = None) -> list[Any]:
    """Read ``expected`` messages of ``topic`` from the start, by manual assignment (no group
    join), partition by partition; returns confluent-kafka messages in partition order."""
    import time

    from confluent_kafka import TopicPartition

    from alertbutler.kafka.factory import make_reader

    consumer = make_reader({"bootstrap.servers": bootstrap},
                           **{"enable.partition.eof": False, "log_level": 3})
    try:
        if partitions is None:
            meta = consumer.list_topics(topic, timeout=10)
            partitions = sorted(meta.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is None:
                    out.append(msg)
        return out
    finally:
        consumer.close()
