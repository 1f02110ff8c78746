"""``alertbutler butler ...``: create, register-dataset-type, ingest, query-datasets,
query-collections, certify, transfer, export, import, remove-runs.

Each verb parses its arguments, opens the repository and calls one library function.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from .butler import Butler
from .collections import CollectionType
from .dataset_ref import DatasetRef
from .dataset_type import DatasetType
from .dimensions import UNIVERSE
from .regions import Circle
from .storage_classes import STORAGE_CLASSES
from .timespan import Timespan


def _where(pairs: Sequence[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, text = pair.partition("=")
        if not sep:
            raise ValueError(f"--where needs KEY=VALUE[,VALUE...], got {pair!r}")
        values = [UNIVERSE.parse_value(key, v) for v in text.split(",")]
        out[key] = values if len(values) > 1 else values[0]
    return out


def _timespan(args: argparse.Namespace) -> Timespan | None:
    if getattr(args, "begin", None) is None and getattr(args, "end", None) is None:
        return None
    return Timespan.of(args.begin, args.end)


def _region(text: str | None) -> Circle | None:
    if not text:
        return None
    try:
        ra, dec, radius = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--region needs RA,DEC,RADIUS in degrees, got {text!r}") from None
    return Circle(ra, dec, radius)


def _query(butler: Butler, types: Sequence[str], args: argparse.Namespace) -> list[DatasetRef]:
    refs: list[DatasetRef] = []
    for name in types:
        refs += butler.query_datasets(name, args.collections, where=_where(args.where),
                                      timespan=_timespan(args), region=_region(args.region))
    return refs


def _print_refs(refs: Sequence[DatasetRef], fmt: str) -> None:
    if fmt == "json":
        for ref in refs:
            print(json.dumps(ref.to_json()))
        return
    for ref in refs:
        did = " ".join(f"{k}={v}" for k, v in ref.data_id.items())
        print(f"{ref.dataset_type.name:<20} {ref.run:<24} {did:<48} {ref.id}")
    print(f"{len(refs)} dataset(s)", file=sys.stderr)


# -- verbs -------------------------------------------------------------------------------------
def _create(args: argparse.Namespace, config: Any) -> int:
    url = args.registry_url if args.registry_url is not None else config.butler.registry_url
    with Butler.create(args.repo, registry_url=url) as b:
        print(f"created butler repository {b.root} (registry {b.registry.db.engine.url!r})")
    return 0


def _register(args: argparse.Namespace, config: Any) -> int:
    with Butler(args.repo) as b:
        STORAGE_CLASSES[args.storage_class]
        new = b.registry.register_dataset_type(DatasetType(
            args.name, args.dimensions, args.storage_class, is_calibration=args.calibration))
        print(("registered " if new else "already registered: ")
              + str(b.get_dataset_type(args.name)))
    return 0


def _ingest(args: argparse.Namespace, config: Any) -> int:
    with Butler(args.repo) as b:
        result = b.ingest(args.files, run=args.run, dataset_type=args.dataset_type,
                          transfer=args.transfer, template=args.template)
    print(f"ingested {len(result.refs)} file(s) into {args.run}")
    for _path, why in result.failures:
        print(f"rejected: {why}", file=sys.stderr)
    if result.failures:
        print(f"{len(result.failures)} of {len(args.files)} file(s) rejected (nothing of them "
              "was registered)", file=sys.stderr)
    return 1 if result.failures else 0


def _query_datasets(args: argparse.Namespace, config: Any) -> int:
    with Butler(args.repo) as b:
        _print_refs(_query(b, [args.dataset_type], args), args.format)
    return 0


def _query_collections(args: argparse.Namespace, config: Any) -> int:
    types = [CollectionType[t] for t in args.type] if args.type else None
    with Butler(args.repo) as b:
        for rec in b.query_collections(args.pattern, types):
            chain = ""
            if rec.type is CollectionType.CHAINED:
                chain = " -> " + ", ".join(b.registry.get_chain(rec.name))
            print(f"{rec.name:<32} {rec.type.name}{chain}")
    return 0


def _certify(args: argparse.Namespace, config: Any) -> int:
    with Butler(args.repo) as b:
        refs = b.query_datasets(args.dataset_type, args.run, where=_where(args.where))
        if not refs:
            raise ValueError(f"no {args.dataset_type} datasets in run {args.run!r} to certify")
        ts = Timespan.of(args.begin, args.end)
        b.certify(args.collection, refs, ts)
    print(f"certified {len(refs)} {args.dataset_type} dataset(s) in {args.collection} for {ts}")
    return 0


def _transfer(args: argparse.Namespace, config: Any) -> int:
    with Butler(args.source) as src, Butler(args.dest) as dest:
        refs = _query(src, args.dataset_types, args)
        added = dest.transfer_from(src, refs, transfer=args.transfer,
                                   calibration_collections=args.calibration_collections)
    print(f"transferred {len(added)} of {len(refs)} dataset(s)")
    return 0


def _export(args: argparse.Namespace, config: Any) -> int:
    with Butler(args.repo) as b:
        refs = _query(b, args.dataset_types, args)
        manifest = b.export(args.directory, refs,
                            calibration_collections=args.calibration_collections)
    print(f"exported {len(refs)} dataset(s) to {manifest}")
    return 0


def _import(args: argparse.Namespace, config: Any) -> int:
    with Butler(args.repo) as b:
        added = b.import_(args.directory, transfer=args.transfer)
    print(f"imported {len(added)} dataset(s)")
    return 0


def _remove_runs(args: argparse.Namespace, config: Any) -> int:
    with Butler(args.repo) as b:
        n = b.remove_runs(args.runs)
    print(f"removed {len(args.runs)} run(s) and {n} dataset(s)")
    return 0


def _add_query_args(p: argparse.ArgumentParser, collections_required: bool = True) -> None:
    p.add_argument("--collections", nargs="+", required=collections_required,
                   help="collection search path")
    p.add_argument("--where", nargs="*", metavar="KEY=VALUE",
                   help="data ID constraints (comma-separated values mean any of)")
    p.add_argument("--begin", help="time range start (ISO UTC)")
    p.add_argument("--end", help="time range end (ISO UTC)")
    p.add_argument("--region", metavar="RA,DEC,RADIUS", help="sky circle in degrees")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("create", help="create a repository")
    p.add_argument("repo")
    p.add_argument("--registry-url", default=None,
                   help="PostgreSQL URL (default: butler.registry_url, else SQLite in REPO)")
    p.set_defaults(func=_create)

    p = subparsers.add_parser("register-dataset-type", help="register a dataset type")
    p.add_argument("repo")
    p.add_argument("name")
    p.add_argument("storage_class")
    p.add_argument("dimensions", nargs="+")
    p.add_argument("--calibration", action="store_true", help="a calibration dataset type")
    p.set_defaults(func=_register)

    p = subparsers.add_parser("ingest", help="ingest external FITS files (raws)")
    p.add_argument("repo")
    p.add_argument("files", nargs="+")
    p.add_argument("--run", required=True)
    p.add_argument("--dataset-type", default="raw")
    p.add_argument("--transfer", default="copy",
                   choices=["copy", "move", "symlink", "hardlink", "direct"])
    p.add_argument("--template", help="data ID from file names, e.g. "
                                      "'{instrument}_{exposure}_{detector}.fits'")
    p.set_defaults(func=_ingest)

    p = subparsers.add_parser("query-datasets", help="list datasets")
    p.add_argument("repo")
    p.add_argument("dataset_type")
    _add_query_args(p)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=_query_datasets)

    p = subparsers.add_parser("query-collections", help="list collections")
    p.add_argument("repo")
    p.add_argument("pattern", nargs="?", default="*", help="glob pattern")
    p.add_argument("--type", nargs="*", choices=[t.name for t in CollectionType])
    p.set_defaults(func=_query_collections)

    p = subparsers.add_parser("certify", help="certify calibrations of a run for a time range")
    p.add_argument("repo")
    p.add_argument("dataset_type")
    p.add_argument("--run", required=True, help="run holding the calibrations")
    p.add_argument("--collection", required=True, help="CALIBRATION collection")
    p.add_argument("--begin", help="validity start (ISO UTC; default unbounded)")
    p.add_argument("--end", help="validity end (ISO UTC; default unbounded)")
    p.add_argument("--where", nargs="*", metavar="KEY=VALUE")
    p.set_defaults(func=_certify)

    p = subparsers.add_parser("transfer", help="copy datasets and records between repos")
    p.add_argument("source")
    p.add_argument("dest")
    p.add_argument("dataset_types", nargs="+")
    _add_query_args(p)
    p.add_argument("--transfer", default="copy", choices=["copy", "symlink", "hardlink"])
    p.add_argument("--calibration-collections", nargs="*", default=[])
    p.set_defaults(func=_transfer)

    p = subparsers.add_parser("export", help="export datasets to a directory with a manifest")
    p.add_argument("repo")
    p.add_argument("directory")
    p.add_argument("dataset_types", nargs="+")
    _add_query_args(p)
    p.add_argument("--calibration-collections", nargs="*", default=[])
    p.set_defaults(func=_export)

    p = subparsers.add_parser("import", help="import an exported directory")
    p.add_argument("repo")
    p.add_argument("directory")
    p.add_argument("--transfer", default="copy", choices=["copy", "move", "symlink",
                                                          "hardlink"])
    p.set_defaults(func=_import)

    p = subparsers.add_parser("remove-runs", help="delete RUN collections and their datasets")
    p.add_argument("repo")
    p.add_argument("runs", nargs="+")
    p.set_defaults(func=_remove_runs)
