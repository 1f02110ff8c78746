"""Prompt processing: nextVisit fan-out, workers that turn raws into alerts, the night driver.

A service package: it uses the libraries (butler, alerts, l1db, imaging, sim) and nothing
uses it but the CLI (and the night, replay and deploy services; the main job, ``alertbutler
run``, is :mod:`alertbutler.night.main_job`). Importing this package stays light;
the heavier public entry points live in their modules:

* ``alertbutler.prompt.pipeline``: ``PromptPipeline``, ``PipelineSettings``,
  ``build_pipeline(config, bootstrap, *, camera, n_detectors, size, name, clock,
  write_outputs, output_run, detection_threshold)``;
* ``alertbutler.prompt.central``: ``build_central_repo(root, sim)``, ``template_location``;
* ``alertbutler.prompt.driver``: ``NightDriver``, ``Faults``;
* ``alertbutler.prompt.clock``: ``Clock``, ``SystemClock``, ``FixedClock``;
* ``alertbutler.prompt.benchmark``: ``time_detector_visit()`` (bench/visit.py).
"""

from alertbutler.prompt.association import Association, associate, summarize_object
from alertbutler.prompt.errors import (
    BadEventError,
    CorruptRawError,
    MissingInputError,
    PromptError,
    RawTimeoutError,
    UnknownDetectorError,
    VisitDetectorError,
)
from alertbutler.prompt.events import (
    NextVisit,
    WorkItem,
    decode_next_visit,
    decode_work_item,
    encode_next_visit,
    encode_work_item,
)
from alertbutler.prompt.fanout import FanoutService, FootprintHistory, fan_out
from alertbutler.prompt.ids import dia_forced_source_id, dia_source_id, unpack_id
from alertbutler.prompt.status import VisitDetectorStatus
from alertbutler.prompt.worker import Processor, Worker
from alertbutler.visit_detector import VisitDetector

__all__ = [
    "Association",
    "BadEventError",
    "CorruptRawError",
    "FanoutService",
    "FootprintHistory",
    "MissingInputError",
    "NextVisit",
    "Processor",
    "PromptError",
    "RawTimeoutError",
    "UnknownDetectorError",
    "VisitDetector",
    "VisitDetectorError",
    "VisitDetectorStatus",
    "WorkItem",
    "Worker",
    "associate",
    "decode_next_visit",
    "decode_work_item",
    "dia_forced_source_id",
    "dia_source_id",
    "encode_next_visit",
    "encode_work_item",
    "fan_out",
    "summarize_object",
    "unpack_id",
]
