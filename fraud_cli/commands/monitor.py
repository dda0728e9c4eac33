"""``monitor``: the local alert check — champion ROC-AUC below the floor, or drift found. Exit 1 when firing."""

from __future__ import annotations

import argparse
import logging

from fraud_cli.output import emit_json, summary

NAME = "monitor"
HELP = (
    "Check the alerts: champion test ROC-AUC below FRAUD_ALERT_MIN_ROC_AUC (0.89) or drift found in the newest "
    "drift report. Exits 1 and logs each firing alert at ERROR (for cron / CI); 0 when all is well."
)

log = logging.getLogger("fraud_detection.monitor")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from fraud_detection.monitoring import check_alerts
    from fraud_detection.settings import get_settings
    from fraud_detection.storage import store_from_settings

    settings = get_settings()
    result = check_alerts(settings, store_from_settings(settings))
    for alert in result.firing:
        log.error(f"ALERT FIRING: {alert}", extra={"alert": alert})
    if args.json:
        emit_json({"ok": result.ok, "firing": result.firing, "checked": result.checked})
    if result.firing:
        summary(f"monitor: ALERT - {len(result.firing)} alert(s) firing: " + " | ".join(result.firing))
        return 1
    champ = result.checked.get("champion", {})
    auc = champ.get("roc_auc", float("nan"))
    summary(f"monitor: ok - champion {champ.get('model_version')} ROC-AUC {auc:.4f}, no drift")
    return 0
