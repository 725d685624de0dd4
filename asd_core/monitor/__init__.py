"""``asd monitor``: score incoming, unlabeled recordings with a registered model version, once per file
content, into the ``detections`` table; what cannot be scored goes to ``monitor_quarantine``."""

from asd_core.monitor.discover import Candidate, ManifestError, Problem, discover_folder, read_manifest, time_in_name
from asd_core.monitor.model import DEFAULT_MODEL, ModelError, MonitorModel, load_model, parse_model
from asd_core.monitor.run import IncomingError, MonitorReport, run_monitor
from asd_core.monitor.tables import MonitorBusyError, publish

__all__ = ["Candidate", "DEFAULT_MODEL", "IncomingError", "ManifestError", "ModelError", "MonitorBusyError", "MonitorModel",
           "MonitorReport", "Problem", "discover_folder", "load_model", "parse_model", "publish", "read_manifest",
           "run_monitor", "time_in_name"]
