"""Deployment check: the training job (AWS Glue), its catalog, schedule and alarms; the daily live-drift
job, its schedule, and the drift alarm its DriftFound metric feeds.

pipenv run python tests/verify_glue_job.py [--env dev] [--stack-name fraud-dev] [--endpoint-url URL]
    [--alarm-email ADDRESS]

The model-quality and drift alarms must select the metric the code publishes: namespace, metric name and
dimension from ``fraud_detection.monitoring``, the dimension's value being the model name each job
publishes under (its ``--model_name``, else the settings default), the floor ``alert_min_roc_auc``.
"""

from __future__ import annotations

import re
import sys

from verify_common import (
    Report,
    check_alarm_topic,
    check_role,
    expect,
    expect_equal,
    expect_notifies_only,
    run_configuration_checks,
)

REQUIRED_ARGUMENTS = {
    "--enable-glue-datacatalog": "true",
    "--catalog_mode": "glue",
    "--enable-metrics": "true",
}  # no --enable-continuous-cloudwatch-log: Glue 5.0 always logs in real time and ignores it
# (https://docs.aws.amazon.com/glue/latest/dg/monitor-continuous-logging-enable.html)
BOOKMARK_VALUES = {"job-bookmark-enable", "job-bookmark-disable", "job-bookmark-pause"}
LIVE_DRIFT_ARGUMENTS = {"--enable-glue-datacatalog": "true", "--catalog_mode": "glue", "--kv_backend": "dynamodb"}


def _settings_default(field: str):
    from fraud_detection.settings import Settings

    return Settings.model_fields[field].default


def published_model_name(job_arguments: dict) -> str:
    """The ModelName dimension a job publishes under: ``--model_name`` (glue/train_job.py,
    glue/live_drift_job.py override the setting with it), else the settings default."""
    return job_arguments.get("--model_name") or _settings_default("registered_model_name")


def _role_arn(dep, role: str) -> str:
    return role if role.startswith("arn:") else f"arn:aws:iam::{dep.account}:role/{role}"


def _s3_exists(s3, uri: str) -> bool:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except s3.exceptions.ClientError:
        return False


def run_checks(dep, report: Report) -> None:
    glue, s3 = dep.client("glue"), dep.client("s3")
    bucket = dep.bucket
    job_name = dep.output("GlueJobName")
    job: dict = {}
    with report.check(f"job {job_name} exists") as note:
        job = glue.get_job(JobName=job_name)["Job"]
        note["detail"] = f"role {job.get('Role', '?').rsplit('/', 1)[-1]}"
    if not job:
        return
    args = job.get("DefaultArguments", {})

    with report.check("Glue version 5.x (Spark 3.5, Python 3.11)") as note:
        expect(str(job.get("GlueVersion", "")).startswith("5."), f"GlueVersion is {job.get('GlueVersion')!r}")
        note["detail"] = job["GlueVersion"]
    with report.check("Spark ETL command, script from the bucket") as note:
        cmd = job.get("Command", {})
        expect_equal(cmd.get("Name"), "glueetl", "Command.Name")
        expected = f"s3://{bucket}/code/glue/train_job.py"
        expect_equal(cmd.get("ScriptLocation"), expected, "ScriptLocation")
        expect(_s3_exists(s3, expected), f"{expected} is not uploaded (run the deploy script)")
        note["detail"] = expected
    with report.check("--extra-py-files is the project archive in the bucket") as note:
        expected = f"s3://{bucket}/code/glue/fraud_detection.zip"
        expect_equal(args.get("--extra-py-files"), expected, "--extra-py-files")
        expect(_s3_exists(s3, expected), f"{expected} is not uploaded (run the deploy script)")
        note["detail"] = expected
    with report.check("--additional-python-modules pins the job's libraries") as note:
        modules = [m for m in args.get("--additional-python-modules", "").split(",") if m.strip()]
        expect(modules, "--additional-python-modules is missing or empty")
        unpinned = [m for m in modules if not re.search(r"==\S+$", m.strip())]
        expect(not unpinned, f"modules without an exact version: {unpinned}")
        expect(any(m.strip().startswith("scikit-learn==") for m in modules), "scikit-learn is not among them")
        # the list is the whole locked closure: pip must install exactly it, resolving nothing at job start
        options = args.get("--python-modules-installer-option", "").split()
        expect("--no-deps" in options, f"--python-modules-installer-option is {options}, without --no-deps")
        note["detail"] = f"{len(modules)} modules"
    with report.check("store, input and catalog arguments") as note:
        expect_equal(args.get("--store_uri"), f"s3://{bucket}", "--store_uri")
        expect_equal(args.get("--input"), f"s3://{bucket}/raw/", "--input")
        for key, value in REQUIRED_ARGUMENTS.items():
            expect_equal(args.get(key), value, key)
    with report.check("job bookmark option set explicitly") as note:
        value = args.get("--job-bookmark-option")
        expect(value in BOOKMARK_VALUES, f"--job-bookmark-option is {value!r}")
        note["detail"] = value
    with report.check("one run at a time (MaxConcurrentRuns 1)"):
        expect_equal(job.get("ExecutionProperty", {}).get("MaxConcurrentRuns"), 1, "MaxConcurrentRuns")
    with report.check("worker type and count") as note:
        expect(job.get("WorkerType") in ("G.1X", "G.2X", "G.4X", "G.8X"), f"WorkerType {job.get('WorkerType')!r}")
        expect((job.get("NumberOfWorkers") or 0) >= 2, f"NumberOfWorkers {job.get('NumberOfWorkers')!r}")
        note["detail"] = f"{job['NumberOfWorkers']} x {job['WorkerType']}"
    check_role(report, dep, "training job", _role_arn(dep, job.get("Role", "")), "glue.amazonaws.com", "GlueJobRoleArn")
    with report.check("job timeout bounded") as note:
        expect(0 < (job.get("Timeout") or 0) <= 24 * 60, f"Timeout {job.get('Timeout')!r} minutes")
        note["detail"] = f"{job['Timeout']} min"

    database = dep.output("GlueDatabaseName")
    with report.check(f"catalog database {database}"):
        expect_equal(database, "fraud", "database name")
        glue.get_database(Name=database)
    for table, prefix in (("transactions", "curated/"), ("features", "features/")):
        with report.check(f"table {database}.{table}: Parquet under s3://{bucket}/{prefix}, partitioned year/month"):
            t = glue.get_table(DatabaseName=database, Name=table)["Table"]
            expect_equal([k["Name"] for k in t.get("PartitionKeys", [])], ["year", "month"], "partition keys")
            sd = t.get("StorageDescriptor", {})
            expect(sd.get("Location", "").startswith(f"s3://{bucket}/{prefix}"), f"location {sd.get('Location')!r}")
            serde = sd.get("SerdeInfo", {}).get("SerializationLibrary", "")
            expect("parquet" in serde.lower(), f"SerDe {serde!r} is not Parquet")

    trigger_name = dep.output("GlueTriggerName")
    with report.check(f"monthly schedule {trigger_name} starts the job with --trigger schedule") as note:
        trig = glue.get_trigger(Name=trigger_name)["Trigger"]
        expect_equal(trig.get("Type"), "SCHEDULED", "trigger type")
        fields = trig.get("Schedule", "").removeprefix("cron(").removesuffix(")").split()
        expect(len(fields) == 6, f"schedule {trig.get('Schedule')!r} is not a cron expression")
        expect(fields[2].isdigit() and fields[3] == "*", f"schedule {trig.get('Schedule')!r} is not monthly")
        actions = [a for a in trig.get("Actions", []) if a.get("JobName") == job_name]
        expect(actions, f"trigger does not start {job_name}")
        expect_equal(actions[0].get("Arguments", {}).get("--trigger"), "schedule", "--trigger argument")
        expect(trig.get("State") in ("ACTIVATED", "ACTIVATING"), f"trigger state {trig.get('State')!r}")
        note["detail"] = trig["Schedule"]

    topic = check_alarm_topic(report, dep)
    rule_name = dep.output("GlueJobFailedRuleName")
    _failure_rule_check(dep, report, rule_name, job_name)
    alarms = dep.alarms()
    with report.check("alarm on training failures (the failure rule's TriggeredRules) notifies the topic") as note:
        found = [
            a for a in alarms
            if a.get("Namespace") == "AWS/Events" and a.get("MetricName") == "TriggeredRules"
            and a.get("Dimensions") == [{"Name": "RuleName", "Value": rule_name}]
        ]  # fmt: skip
        expect(found, f"no CloudWatch alarm on AWS/Events TriggeredRules for {rule_name}")
        expect_notifies_only(found[0], topic)
        note["detail"] = found[0]["AlarmName"]
    check_quality_alarm(report, alarms, published_model_name(args), topic)
    check_live_drift(dep, report, alarms, args, topic)


def check_quality_alarm(report: Report, alarms: list[dict], model_name: str, topic: str | None) -> None:
    """An alarm on the TestRocAuc the training job publishes, below the code's floor, to the topic."""
    from fraud_detection import monitoring

    floor = _settings_default("alert_min_roc_auc")
    metric = f"{monitoring.NAMESPACE}/{monitoring.TEST_ROC_AUC}"
    with report.check(f"model quality floor: alarm when {metric}[{model_name}] < {floor}") as note:
        found = [
            a for a in alarms
            if a.get("Namespace") == monitoring.NAMESPACE and a.get("MetricName") == monitoring.TEST_ROC_AUC
        ]  # fmt: skip
        expect(found, f"no alarm on {metric}")
        alarm = found[0]
        wanted = [{"Name": monitoring.DIMENSION, "Value": model_name}]
        expect_equal(alarm.get("Dimensions"), wanted, "dimensions (what the training job publishes)")
        expect_equal(alarm.get("ComparisonOperator"), "LessThanThreshold", "comparison")
        expect(
            abs(float(alarm.get("Threshold", 0)) - floor) < 1e-9, f"threshold {alarm.get('Threshold')}, floor {floor}"
        )
        expect_notifies_only(alarm, topic)
        note["detail"] = alarm.get("AlarmName")


def _failure_rule_check(dep, report: Report, rule_name: str, job_name: str) -> None:
    """An EventBridge rule matching the job's FAILED runs targets the alarm topic."""
    import json

    topic = dep.output("AlarmTopicArn")
    with report.check(f"failed runs of {job_name} raise an event to the alarm topic") as note:
        events = dep.client("events")
        rule = events.describe_rule(Name=rule_name)
        pattern = json.loads(rule["EventPattern"])
        expect_equal(pattern.get("source"), ["aws.glue"], "event source")
        expect(job_name in pattern.get("detail", {}).get("jobName", []), f"rule does not match job {job_name}")
        expect("FAILED" in pattern.get("detail", {}).get("state", []), "rule does not match state FAILED")
        expect_equal(rule.get("State"), "ENABLED", "rule state")
        targets = [t["Arn"] for t in events.list_targets_by_rule(Rule=rule_name)["Targets"]]
        expect(topic in targets, f"rule targets {targets}, not the alarm topic")
        note["detail"] = rule_name


def _daily(schedule: str) -> bool:
    """cron(min hour day-of-month month day-of-week year) firing once every day."""
    fields = schedule.removeprefix("cron(").removesuffix(")").split()
    return (
        len(fields) == 6
        and fields[0].isdigit()
        and fields[1].isdigit()
        and fields[2] in ("*", "?")
        and fields[3] == "*"
        and fields[4] in ("*", "?")
    )


def check_live_drift(dep, report: Report, alarms: list[dict], train_args: dict, topic: str | None) -> None:
    """The daily live-drift job: script, arguments, role, schedule, failure events, and the drift alarm."""
    glue, s3, bucket = dep.client("glue"), dep.client("s3"), dep.bucket
    job_name = dep.output("LiveDriftJobName")
    job: dict = {}
    with report.check(f"live-drift job {job_name} exists") as note:
        job = glue.get_job(JobName=job_name)["Job"]
        note["detail"] = f"role {job.get('Role', '?').rsplit('/', 1)[-1]}"
    if not job:
        return
    args = job.get("DefaultArguments", {})
    with report.check("live-drift job: Glue 5.x Spark ETL, its script and the project archive uploaded") as note:
        expect(str(job.get("GlueVersion", "")).startswith("5."), f"GlueVersion is {job.get('GlueVersion')!r}")
        expect_equal(job.get("Command", {}).get("Name"), "glueetl", "Command.Name")
        script = f"s3://{bucket}/code/glue/live_drift_job.py"
        expect_equal(job.get("Command", {}).get("ScriptLocation"), script, "ScriptLocation")
        expect(_s3_exists(s3, script), f"{script} is not uploaded (run the deploy script)")
        archive = f"s3://{bucket}/code/glue/fraud_detection.zip"
        expect_equal(args.get("--extra-py-files"), archive, "--extra-py-files")
        note["detail"] = script
    with report.check("live-drift job reads the stack's prediction log and store") as note:
        expect_equal(args.get("--store_uri"), f"s3://{bucket}", "--store_uri")
        expect_equal(args.get("--prediction_log_table"), dep.output("PredictionLogTableName"), "--prediction_log_table")
        for key, value in LIVE_DRIFT_ARGUMENTS.items():
            expect_equal(args.get(key), value, key)
        hours = args.get("--hours", "")
        expect(hours.replace(".", "", 1).isdigit() and float(hours) > 0, f"--hours is {hours!r}")
        note["detail"] = f"last {hours} h of {args['--prediction_log_table']}"
    check_role(
        report, dep, "live-drift job", _role_arn(dep, job.get("Role", "")), "glue.amazonaws.com", "LiveDriftJobRoleArn"
    )
    with report.check("live-drift job: one run at a time, bounded") as note:
        expect_equal(job.get("ExecutionProperty", {}).get("MaxConcurrentRuns"), 1, "MaxConcurrentRuns")
        expect(0 < (job.get("Timeout") or 0) <= 24 * 60, f"Timeout {job.get('Timeout')!r} minutes")
        note["detail"] = f"{job['Timeout']} min"

    trigger_name = dep.output("LiveDriftTriggerName")
    with report.check(f"daily schedule {trigger_name} starts the live-drift job") as note:
        trig = glue.get_trigger(Name=trigger_name)["Trigger"]
        expect_equal(trig.get("Type"), "SCHEDULED", "trigger type")
        expect(_daily(trig.get("Schedule", "")), f"schedule {trig.get('Schedule')!r} is not daily")
        expect([a for a in trig.get("Actions", []) if a.get("JobName") == job_name], f"does not start {job_name}")
        expect(trig.get("State") in ("ACTIVATED", "ACTIVATING"), f"trigger state {trig.get('State')!r}")
        note["detail"] = trig.get("Schedule")
    _failure_rule_check(dep, report, dep.output("LiveDriftJobFailedRuleName"), job_name)

    from fraud_detection import monitoring

    names = {published_model_name(train_args), published_model_name(args)}
    metric = f"{monitoring.NAMESPACE}/{monitoring.DRIFT_FOUND}"
    with report.check(f"drift alarm on {metric}, the dimension both jobs publish under, notifies the topic") as note:
        expect(len(names) == 1, f"the training and live-drift jobs publish DriftFound under different names {names}")
        found = [
            a for a in alarms
            if a.get("Namespace") == monitoring.NAMESPACE and a.get("MetricName") == monitoring.DRIFT_FOUND
        ]  # fmt: skip
        expect(found, f"no alarm on {metric}")
        alarm = found[0]
        wanted = [{"Name": monitoring.DIMENSION, "Value": names.pop()}]
        expect_equal(alarm.get("Dimensions"), wanted, "dimensions (the metric's, from --model_name)")
        expect_equal(alarm.get("ComparisonOperator"), "GreaterThanOrEqualToThreshold", "comparison")
        expect(float(alarm.get("Threshold", 0)) == 1.0, f"threshold {alarm.get('Threshold')}")
        expect_notifies_only(alarm, topic)
        note["detail"] = alarm.get("AlarmName")


def main(argv: list[str] | None = None, session=None) -> int:
    return run_configuration_checks(__doc__, "glue", run_checks, argv, session)


if __name__ == "__main__":
    sys.exit(main())
