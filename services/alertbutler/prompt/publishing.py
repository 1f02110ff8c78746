"""Publishing a visit-detector's alerts: one ``AlertBatch`` put through the publish datastore.

The publishing butler shares the worker's local repo (its registry) but writes through the
publish datastore, whose ``put`` returns only once Kafka acknowledged every alert and the
end-of-visit-detector markers (:mod:`alertbutler.alerts.publish_datastore`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from alertbutler.alerts.publish_datastore import PublishDatastore
from alertbutler.alerts.records import AlertRecord
from alertbutler.butler import Butler, DatasetRef

log = logging.getLogger(__name__)

#: the publishing butler's RUN, and the dataset type of one visit-detector's alerts
ALERT_RUN = "alerts/published"
ALERT_DATASET = "alerts"


class AlertPublisher:
    """Puts alerts through the publishing butler, once per visit-detector on this worker."""

    def __init__(self, publishing: Butler) -> None:
        self.butler = publishing
        publishing.register_dataset_type(ALERT_DATASET, ["instrument", "visit", "detector"],
                                         "AlertBatch")
        #: publishing inside a caller's Kafka transaction (see :meth:`publishing_through`)
        self._in_transaction = False

    @contextlib.contextmanager
    def publishing_through(self, producer: Any) -> Iterator[None]:
        """Publish with ``producer`` (a confluent-kafka Producer whose transaction is open)
        inside the block, so that the alerts and end markers commit or abort with the rest
        of the caller's transaction (see :meth:`publish_alerts`)."""
        datastore = self.butler.datastore
        if not isinstance(datastore, PublishDatastore):
            raise TypeError(f"publishing through a producer needs the publish datastore, "
                            f"not {type(datastore).__name__}")
        with datastore.publisher.using(producer):
            self._in_transaction = True
            try:
                yield
            finally:
                self._in_transaction = False

    def publish_alerts(self, alerts: Sequence[AlertRecord], *, instrument: str, visit: int,
                detector: int) -> DatasetRef:
        """Put the visit-detector's alerts (maybe none) through the publish datastore: returns
        after Kafka acknowledged them and the end-of-visit-detector markers.

        Once per visit-detector on this worker: the registry row is committed only with the
        acknowledgement, so an item processed again after its alerts went out (its status
        could not be sent during a broker outage) finds them published and does not publish
        the same alerts a second time (it used to fail on the existing row, three times).
        An empty batch found there was an earlier attempt's close (it gave up, or the raw
        came too late): alerts are then published after all, not dropped behind it.

        Inside :meth:`publishing_through` the alerts are visible only if the caller's
        transaction commits, and an item is processed again only when its earlier
        transaction did not (the item's offset commits with it): the row of that earlier
        attempt names aborted messages, so it is replaced and the alerts sent again in the
        open transaction."""
        done = self.butler.find_dataset(ALERT_DATASET, instrument=instrument, visit=visit,
                                        detector=detector, collections=ALERT_RUN)
        if done is not None and self._in_transaction:
            log.info("alerts of an attempt whose transaction did not commit: sent again",
                     extra={"visit": visit, "detector": detector})
            self.butler.prune_datasets([done])
        elif done is not None and alerts and self._closed_empty(done):
            # an earlier attempt closed it empty (gave up, or a raw too late) and its item
            # came back uncommitted: these alerts are news, their markers supersede the close
            log.warning("visit-detector closed empty by an earlier attempt: publishing its "
                        "alerts now", extra={"visit": visit, "detector": detector,
                                             "n_alerts": len(alerts)})
            self.butler.prune_datasets([done])
        elif done is not None:
            log.info("alerts already published and acknowledged by an earlier attempt: not "
                     "sent again", extra={"visit": visit, "detector": detector})
            return done
        return self.butler.put(alerts, ALERT_DATASET, instrument=instrument, visit=visit,
                               detector=detector)

    def _closed_empty(self, ref: DatasetRef) -> bool:
        datastore = self.butler.datastore
        return isinstance(datastore, PublishDatastore) and datastore.n_messages(ref) == 0
