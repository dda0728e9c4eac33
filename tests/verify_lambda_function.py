"""Deployment check: the retraining function (Lambda), its trigger, failure destination and state table.

pipenv run python tests/verify_lambda_function.py [--env dev] [--stack-name fraud-dev] [--endpoint-url URL]
"""

from __future__ import annotations

import io
import json
import sys
import zipfile

from verify_common import (
    Report,
    check_log_group,
    check_table,
    expect,
    expect_equal,
    run_configuration_checks,
)

HANDLER = "retrain_lambda.handler.handler"
RUNTIME = "python3.11"
PACKAGE_MEMBERS = ("retrain_lambda/handler.py", "fraud_detection/settings.py")


def run_checks(dep, report: Report) -> None:
    lam = dep.client("lambda")
    bucket = dep.bucket
    name = dep.outputs.get("RetrainFunctionName")
    cfg: dict = {}
    with report.check("function deployed") as note:
        expect(name, "the stack has no RetrainFunctionName output (bootstrap only: run the deploy script)")
        cfg = lam.get_function_configuration(FunctionName=name)
        note["detail"] = cfg["FunctionArn"]
    if not cfg:
        return
    with report.check(f"runtime {RUNTIME}, handler {HANDLER}"):
        expect_equal(cfg.get("Runtime"), RUNTIME, "runtime")
        expect_equal(cfg.get("Handler"), HANDLER, "handler")
    with report.check("timeout and memory bounded") as note:
        expect(30 <= cfg.get("Timeout", 0) <= 900, f"timeout {cfg.get('Timeout')}s")
        expect(128 <= cfg.get("MemorySize", 0) <= 3008, f"memory {cfg.get('MemorySize')} MB")
        note["detail"] = f"{cfg['Timeout']} s, {cfg['MemorySize']} MB"
    with report.check("runs as the stack's retrain role"):
        expect_equal(cfg.get("Role"), dep.output("RetrainFunctionRoleArn"), "role")

    env = cfg.get("Environment", {}).get("Variables", {})
    job = dep.output("GlueJobName")
    table = dep.output("IdempotencyTableName")
    expected_env = {
        "FRAUD_STORE_URI": f"s3://{bucket}",
        "FRAUD_KV_BACKEND": "dynamodb",
        "FRAUD_IDEMPOTENCY_TABLE": table,
        "FRAUD_LAUNCHER": "glue",
        "FRAUD_GLUE_JOB_NAME": job,
    }
    with report.check("environment points at the bucket, the job and the idempotency table"):
        wrong = {k: env.get(k) for k, v in expected_env.items() if env.get(k) != v}
        expect(not wrong, f"unexpected values {wrong}; expected {expected_env}")
        dep.client("glue").get_job(JobName=env["FRAUD_GLUE_JOB_NAME"])
        dep.client("dynamodb").describe_table(TableName=env["FRAUD_IDEMPOTENCY_TABLE"])
    with report.check("no secret in the environment"):
        suspicious = [k for k in env if any(w in k.upper() for w in ("SECRET", "PASSWORD", "API_KEY", "HASH_KEY"))]
        expect(not suspicious, f"secret-looking variables: {suspicious}")

    # Optional (RetrainReservedConcurrency, default none): reserving fails on accounts with a low
    # concurrency quota. Duplicate events start no second run either way (idempotency table).
    conc = lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
    report.info("reserved concurrency", str(conc) if conc else "none reserved (RetrainReservedConcurrency=0)")
    dlq_arn = dep.output("RetrainDlqArn")
    with report.check("failed events go to the dead-letter queue") as note:
        destinations = []
        try:
            eic = lam.get_function_event_invoke_config(FunctionName=name)
            destinations.append(eic.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination"))
        except lam.exceptions.ResourceNotFoundException:
            pass
        destinations.append(cfg.get("DeadLetterConfig", {}).get("TargetArn"))
        expect(
            dlq_arn in destinations, f"on-failure destination / DLQ is {[d for d in destinations if d]}, not {dlq_arn}"
        )
        sqs = dep.client("sqs")
        sqs.get_queue_url(QueueName=dlq_arn.rsplit(":", 1)[-1])
        note["detail"] = dlq_arn.rsplit(":", 1)[-1]

    with report.check("S3 ObjectCreated under landing/ invokes the function") as note:
        conf = dep.client("s3").get_bucket_notification_configuration(Bucket=bucket)
        matches = []
        for item in conf.get("LambdaFunctionConfigurations", []):
            if item.get("LambdaFunctionArn") != cfg["FunctionArn"]:
                continue
            rules = {
                r["Name"].lower(): r["Value"] for r in item.get("Filter", {}).get("Key", {}).get("FilterRules", [])
            }
            events = item.get("Events", [])
            if rules.get("prefix") == "landing/" and any(e.startswith("s3:ObjectCreated:") for e in events):
                matches.append(events)
        expect(matches, f"no ObjectCreated notification with prefix landing/ to {name} on s3://{bucket}")
        note["detail"] = f"{matches[0]}"
    with report.check("S3 may invoke the function (resource policy, this bucket only)"):
        policy = json.loads(lam.get_policy(FunctionName=name)["Policy"])
        ok = False
        for st in policy.get("Statement", []):
            principal = st.get("Principal", {})
            service = principal.get("Service") if isinstance(principal, dict) else principal
            source = json.dumps(st.get("Condition", {}))
            if service == "s3.amazonaws.com" and f"arn:aws:s3:::{bucket}" in source and st.get("Effect") == "Allow":
                ok = True
        expect(ok, "no statement lets s3.amazonaws.com invoke it with SourceArn = the bucket")

    with report.check("code package holds the handler and the domain library") as note:
        body = dep.client("s3").get_object(Bucket=bucket, Key="code/lambda/retrain.zip")["Body"].read()
        names = set(zipfile.ZipFile(io.BytesIO(body)).namelist())
        missing = [m for m in PACKAGE_MEMBERS if m not in names]
        expect(not missing, f"s3://{bucket}/code/lambda/retrain.zip lacks {missing}")
        note["detail"] = f"{len(names)} files"
    check_table(report, dep, "idempotency", table, [("id", "S", "HASH")])
    check_log_group(report, dep, "function", f"/aws/lambda/{name}")


def main(argv: list[str] | None = None, session=None) -> int:
    return run_configuration_checks(__doc__, "lambda", run_checks, argv, session)


if __name__ == "__main__":
    sys.exit(main())
