"""Lambda entry point: parse the event into typed records, call the intake, return a summary.

Events: S3 ObjectCreated under ``landing/`` (also sent by the local ``watch`` command), and EventBridge
"Glue Job State Change" for the training job (starts the follow-up run a busy job left pending).
No training happens here: the function returns once the run is requested.
"""

from __future__ import annotations

import logging
from typing import Any

from fraud_detection.logs import configure_logging, correlation_id
from fraud_detection.settings import get_settings
from retrain_lambda import events
from retrain_lambda.intake import Deps, process_glue_state_change, process_objects

log = logging.getLogger("retrain_lambda")
_deps: tuple[Any, Deps] | None = None


def _dependencies() -> Deps:
    """Built once per container (per settings object: tests and the verify script swap settings)."""
    global _deps
    settings = get_settings()
    if _deps is None or _deps[0] is not settings:
        _deps = (settings, Deps.from_settings(settings))
    return _deps[1]


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if not logging.getLogger().handlers:
        configure_logging("INFO")
    correlation_id.set(getattr(context, "aws_request_id", None))
    change = events.parse_glue_state_change(event)
    if change is not None:
        return {"glue_state_change": process_glue_state_change(change, _dependencies())}
    if events.is_s3_test_event(event):
        return {"ignored": "s3:TestEvent"}
    if not events.is_s3_event(event):
        raise events.EventError(f"not an S3 or Glue state-change event: keys {sorted(event)}")
    result = process_objects(events.parse_s3_records(event), _dependencies())
    log.info("event processed", extra={"result": result.as_dict()})
    return result.as_dict()
