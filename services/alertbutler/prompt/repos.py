"""A worker's three butlers: the central repo, its own local repo, and the publishing butler.

Each worker process owns a local repo (``<local_repo_root>/<worker>``), created on first use.
The publishing butler shares the local repo's registry but writes through the publish
datastore. What the worker does with them lives beside the step that does it:
:mod:`~alertbutler.prompt.preload` (central -> local), :mod:`~alertbutler.prompt.raws` (raw
ingest), :mod:`~alertbutler.prompt.publishing` (alerts), :mod:`~alertbutler.prompt.outputs`
(local -> central).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alertbutler.butler import Butler, Datastore
from alertbutler.prompt.publishing import ALERT_RUN
from alertbutler.prompt.raws import RAW_RUN


@dataclass(frozen=True)
class WorkerRepos:
    """The butlers of one worker; ``close`` closes all three."""

    central: Butler
    local: Butler
    publishing: Butler

    @classmethod
    def open(cls, *, central_root: Path, local_root: Path,
             publish_datastore: Datastore) -> WorkerRepos:
        central = Butler(central_root)
        if not (local_root / "butler.yaml").exists():
            Butler.create(local_root).close()
        return cls(central=central, local=Butler(local_root, run=RAW_RUN),
                   publishing=Butler(local_root, run=ALERT_RUN, datastore=publish_datastore))

    def close(self) -> None:
        for butler in (self.publishing, self.local, self.central):
            butler.close()
