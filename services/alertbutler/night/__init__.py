"""Running a night: the one runner under ``alertbutler run``, ``night replay`` and ``up``.

A service package above ``prompt`` and ``ingest`` (whose services it runs) and below the
verbs. Each verb keeps what is its own (which night, its observatory, its report); what
running a night takes is here, once:

* :mod:`.config`: ``night_config`` (a night's effective configuration) and ``hand_off``
  (that configuration, whole, to every child process as ``effective-config.toml``);
* :mod:`.workers`: ``WorkerPool``, the worker processes;
* :mod:`.ingester`: ``IngesterThread``, the L1 ingester in-process;
* :mod:`.progress`: ``NightProgress``, status records and L1 completion;
* :mod:`.watch`: ``ProgressBars`` and ``watch``, the foreground loop to a night's end;
* :mod:`.plan`: ``SimulatedNight``, the simulated night's shape and schedule (``run``'s
  options and ``up``'s night plan both extend it);
* :mod:`.main_job`: ``alertbutler run`` (``MainJobOptions``, ``run_main_job``), a simulated
  night; :mod:`.summary` its report.

Importing this package stays light: the modules import their services when they run.
"""
