"""What each filter of a filter service did with a night's alerts, counted from durable places.

Users of alert brokers cannot account for a filter's yield: which alerts it saw, kept, and
whether each kept one reached them. Here every count comes from something that outlives the
service: its status file (``<filters file>.status.json``: the filters running, the source offset
each version applies from, how far the service has read), the source topic read back (where each
of the night's alerts sits), and each filter's output topic read back (``read_committed``: what
was forwarded). A filter version *saw* an alert of the night that sits between the offset it
applies from and the position the service had read to; it *should* forward those its expression
keeps (evaluated again here over the same bytes); what its topic holds among them is what it
*forwarded*. Alerts before the version's activation are not its to account for; alerts past the
position were not read yet.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from alertbutler.config import Config
from alertbutler.subscribe.errors import FilterConfigError
from alertbutler.subscribe.selection import Selector, writers_for
from alertbutler.subscribe.service import status_path
from alertbutler.subscribe.stream import open_stream, raw_decoder
from alertbutler.subscribe.url import StreamURL

VisitDetector = tuple[int, int]
_BATCH = 5000


@dataclass(frozen=True, kw_only=True)
class FilterYield:
    """One active filter's account of the night's alerts."""

    name: str
    filter: str
    topic: str | None
    seen: int  # alerts of the night between its activation and the service's position
    kept: int  # of those, the ones its expression keeps (evaluated again here)
    forwarded: int  # of those, the ones on its topic (distinct alerts)
    before_activation: int = 0  # alerts of the night this version never had to see
    not_read_yet: int = 0  # alerts of the night past the service's position
    forwarded_by_visit_detector: dict[str, int] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def matches(self) -> bool:
        return not self.problems


def _offsets(raw: Mapping[str, int] | None) -> dict[tuple[str, int], int] | None:
    """``{"topic[p]": offset}`` as written by the service, back to ``{(topic, p): offset}``."""
    if raw is None:
        return None
    out = {}
    for key, offset in raw.items():
        topic, _, rest = key.rpartition("[")
        out[(topic, int(rest.rstrip("]")))] = int(offset)
    return out


def read_status(filters_file: str | os.PathLike[str]) -> dict[str, Any]:
    """The filter service's status file beside ``filters_file``; FilterConfigError if absent."""
    path = status_path(filters_file)
    if path.is_symlink() or not path.is_file():
        raise FilterConfigError(f"no filter service status at {path} (has `alertbutler filter "
                                f"serve {filters_file}` run?)")
    try:
        data = json.loads(path.read_text())
        if not isinstance(data.get("filters"), dict) or not isinstance(data.get("source"), str):
            raise ValueError("no 'filters' or 'source'")
        return data
    except ValueError as exc:
        raise FilterConfigError(f"the filter service status {path} is unreadable "
                                f"(written by an older service?): {exc}") from None


def night_filter_yield(filters_file: str | os.PathLike[str],
                       alert_ids: Mapping[VisitDetector, Iterable[int]], *,
                       config: Config) -> list[FilterYield]:
    """Per active filter of the service running ``filters_file``: what it saw, kept and
    forwarded of the alerts named in ``alert_ids`` (a night's, per visit-detector)."""
    status = read_status(filters_file)
    vd_of = {int(i): vd for vd, ids in alert_ids.items() for i in ids}
    url = StreamURL.parse(status["source"])
    read_to = _offsets(status.get("read_to")) or {}
    filters = {str(n): f for n, f in status["filters"].items()}
    writers = writers_for(config)
    selector = Selector({n: str(f["filter"]) for n, f in filters.items()}, writers)

    # where each of the night's alerts sits on the source, and which filters keep it
    located: dict[int, tuple[str, int, int]] = {}
    keeps: dict[str, set[int]] = {n: set() for n in filters}
    with open_stream(url, start="earliest", end="end", decoder=raw_decoder,
                     config=config) as stream:
        for batch in stream.batches(_BATCH):
            selection = selector.select([a.value for a in batch])
            idents = [_ident(key) for key in selection.keys]
            ours = set()  # first copy of each night alert (a re-published one counts once)
            for i, (alert, ident) in enumerate(zip(batch, idents, strict=True)):
                if ident is not None and ident in vd_of and ident not in located:
                    located[ident] = (alert.topic, alert.partition, alert.offset)
                    ours.add(i)
            for name, idx in selection.kept.items():
                keeps[name].update(idents[i] for i in idx.tolist() if i in ours)

    out = []
    for name, f in filters.items():
        active_from = _offsets(f.get("active_from"))
        seen: set[int] = set()
        before = pending = 0
        for ident, (topic, partition, offset) in located.items():
            start = 0 if active_from is None else active_from.get((topic, partition), 0)
            if offset < start:
                before += 1
            elif offset < read_to.get((topic, partition), 0):
                seen.add(ident)
            else:
                pending += 1
        kept = keeps[name] & seen
        topic = f.get("topic")
        on_topic = _on_topic(url.bootstrap, topic, config) if topic else set()
        forwarded = on_topic & seen
        problems = []
        if topic and kept - forwarded:
            problems.append(f"{len(kept - forwarded)} alerts it keeps are not on {topic!r}")
        if topic and forwarded - kept:
            problems.append(f"{len(forwarded - kept)} alerts on {topic!r} it does not keep")
        if pending:
            problems.append(f"{pending} alerts of the night not read yet by the service")
        by_vd: dict[str, int] = {}
        for ident in sorted(forwarded):
            visit, detector = vd_of[ident]
            label = f"{visit}/{detector}"
            by_vd[label] = by_vd.get(label, 0) + 1
        out.append(FilterYield(
            name=name, filter=str(f["filter"]), topic=topic, seen=len(seen), kept=len(kept),
            forwarded=len(forwarded), before_activation=before, not_read_yet=pending,
            forwarded_by_visit_detector=by_vd, problems=tuple(problems)))
    return out


def _ident(key: bytes | None) -> int | None:
    try:
        return int(key) if key is not None else None
    except ValueError:
        return None


def _on_topic(bootstrap: str, topic: str, config: Config) -> set[int]:
    """The distinct alert ids (message keys) a filter's topic holds, committed ones only."""
    ids: set[int] = set()
    with open_stream(f"kafka://{bootstrap}/{topic}", start="earliest", end="end",
                     decoder=raw_decoder, config=config) as stream:
        for batch in stream.batches(_BATCH):
            for alert in batch:
                ident = _ident(alert.key)
                if ident is not None:
                    ids.add(ident)
    return ids
