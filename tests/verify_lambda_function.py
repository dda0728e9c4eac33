"""Deployment check: the retraining function (Lambda), the code it runs, its answer to a probe event,
its trigger, failure destination and state table.

pipenv run python tests/verify_lambda_function.py [--env dev] [--stack-name fraud-dev] [--endpoint-url URL]
    [--lambda-zip dist/lambda/retrain.zip]

The code: the function's ``CodeSha256`` must be the SHA-256 of the uploaded ``code/lambda/retrain.zip`` and
of the zip the deploy built (``--lambda-zip``); that package must hold every dependency the deploy vendors
(at the locked version, every file of its RECORD, a wheel the runtime loads) and every module the
handler imports when it loads. The answer: the function is invoked with an S3 ObjectCreated event for a
key outside ``landing/``, which the handler answers "ignored" without reading, writing or starting
anything. The emulator cannot run Lambda code, so there that step is skipped and says so.
"""

from __future__ import annotations

import ast
import base64
import json
import sys
import urllib.request
import uuid
from pathlib import Path

import lambda_package
from verify_common import (
    ROOT,
    CheckFailed,
    Report,
    base_parser,
    check_log_group,
    check_role,
    check_table,
    expect,
    expect_equal,
    open_deployment,
    s3_event,
)

HANDLER = "retrain_lambda.handler.handler"
RUNTIME = "python3.11"
CODE_KEY = "code/lambda/retrain.zip"
DEFAULT_LAMBDA_ZIP = ROOT / "dist" / "lambda" / "retrain.zip"
# A key the handler ignores (outside landing/): the probe reads, writes and starts nothing.
PROBE_PREFIX = "verify/lambda-probe/"


def _deploy_constants():
    """What the deploy packs into the zip (one list, read from the deploy script)."""
    from infra import deploy

    return deploy.LAMBDA_PACKAGES, deploy.LAMBDA_DEPENDENCIES


def locked_versions(distributions: tuple[str, ...]) -> dict[str, str]:
    """distribution -> the version Pipfile.lock pins (what the deploy installs into the zip)."""
    lock = json.loads((ROOT / "Pipfile.lock").read_text())["default"]
    out = {}
    for name in distributions:
        entry = lock.get(name) or lock.get(name.lower()) or {}
        if entry.get("version"):
            out[name] = entry["version"].lstrip("=")
    return out


def probe_event(bucket: str, region: str) -> tuple[dict, str]:
    key = f"{PROBE_PREFIX}{uuid.uuid4().hex}.csv"
    return s3_event(bucket, key, 0, "0" * 32, uuid.uuid4().hex[:16].upper(), region), key


def check_probe_answer(answer, key: str) -> None:
    """The handler's answer to the probe: that one key, ignored, and no training requested."""
    expect(isinstance(answer, dict), f"the answer is not the handler's summary: {answer!r:.300}")
    files = answer.get("files")
    expect(isinstance(files, list) and len(files) == 1, f"expected one file outcome, got {answer!r:.300}")
    expect_equal(files[0].get("key"), key, "file outcome key")
    expect_equal(files[0].get("status"), "ignored", f"outcome of {key} (outside landing/)")
    expect(answer.get("launch") is None, f"the probe requested a training run: {answer.get('launch')!r}")


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
    check_role(report, dep, "function", cfg.get("Role", ""), "lambda.amazonaws.com", "RetrainFunctionRoleArn")

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

    with report.check("not throttled to zero (reserved concurrency unset or >= 1)") as note:
        # Reserving is optional (accounts with a low concurrency quota cannot); reserving 0 stops the function.
        conc = lam.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
        expect(conc is None or conc >= 1, f"reserved concurrency {conc}: every invocation is throttled")
        note["detail"] = "unreserved (account pool)" if conc is None else f"{conc} reserved"
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

    check_code(dep, report, cfg, bucket)
    check_invoke(dep, report, name, bucket)
    check_table(report, dep, "idempotency", table, [("id", "S", "HASH")])
    check_log_group(report, dep, "function", f"/aws/lambda/{name}")


def _deployed_package(dep, cfg: dict, uploaded: bytes | None) -> tuple[bytes | None, str]:
    """The bytes the function runs: from Lambda itself on an account, else the upload whose hash matches."""
    if not dep.endpoint_url:
        location = dep.client("lambda").get_function(FunctionName=cfg["FunctionName"])["Code"].get("Location", "")
        if location.startswith("https://"):
            with urllib.request.urlopen(location, timeout=120) as resp:  # noqa: S310 - Lambda's presigned URL
                return resp.read(), "the package Lambda serves (get_function Code.Location)"
    if uploaded is not None and lambda_package.b64_sha256(uploaded) == cfg.get("CodeSha256"):
        return uploaded, f"s3://{dep.bucket}/{CODE_KEY} (same SHA-256 as the function's code)"
    return None, ""


def check_code(dep, report: Report, cfg: dict, bucket: str) -> None:
    """The function runs the uploaded / built zip, and that zip holds what the handler needs."""
    code_sha = cfg.get("CodeSha256")
    uploaded: bytes | None = None
    with report.check(f"function runs the uploaded s3://{bucket}/{CODE_KEY}") as note:
        uploaded = dep.client("s3").get_object(Bucket=bucket, Key=CODE_KEY)["Body"].read()
        got = lambda_package.b64_sha256(uploaded)
        expect(got == code_sha, f"CodeSha256 of the function is {code_sha}, of the uploaded zip {got}: the stack "
                                "was not updated after the upload (run the deploy script)")  # fmt: skip
        note["detail"] = f"CodeSha256 {code_sha}"
    local = Path(dep.args.lambda_zip)
    if local.is_file():
        with report.check(f"function runs the zip the deploy built ({local})"):
            got = lambda_package.b64_sha256(local.read_bytes())
            expect(got == code_sha, f"CodeSha256 of the function is {code_sha}, of {local} {got}: the function "
                                    "runs another build than this checkout's (deploy again)")  # fmt: skip
    else:
        report.skip("function runs the zip the deploy built", f"no local build at {local} (--lambda-zip)")

    packages, dependencies = _deploy_constants()
    data, source = _deployed_package(dep, cfg, uploaded)
    pkg = None
    with report.check("the function's package can be read") as note:
        expect(data is not None, "neither Lambda's copy nor an upload with the function's CodeSha256 is readable")
        pkg = lambda_package.Package.from_bytes(data)
        note["detail"] = f"{len(pkg.files)} files from {source}"
    if pkg is None:
        return
    architecture = (cfg.get("Architectures") or ["x86_64"])[0]
    with report.check(f"package vendors {', '.join(dependencies)} at the locked versions") as note:
        locked = locked_versions(dependencies)
        unlocked = sorted(set(dependencies) - set(locked))
        expect(not unlocked, f"Pipfile.lock pins no version of {unlocked}")
        problems = lambda_package.vendored_problems(pkg, locked, architecture)
        expect(not problems, "; ".join(problems[:8]) + (f" (+{len(problems) - 8} more)" if len(problems) > 8 else ""))
        note["detail"] = ", ".join(f"{k}=={v}" for k, v in locked.items())
    module, _, func = cfg.get("Handler", HANDLER).rpartition(".")
    with report.check(f"package holds {', '.join(packages)} and every module {module} imports") as note:
        for package in packages:
            expect(f"{package}/__init__.py" in pkg.files, f"{package}/ is not in the package")
        path = pkg.module_file(module)
        expect(path and path.endswith(".py"), f"the handler's module {module} is not in the package")
        names = {n.name for n in ast.parse(pkg.files[path]).body if hasattr(n, "name")}
        expect(func in names, f"{path} defines no {func}")
        problems = lambda_package.import_closure_problems(pkg, module, tuple(packages))
        expect(not problems, "; ".join(problems))
        note["detail"] = f"{module}.{func}"


def check_invoke(dep, report: Report, name: str, bucket: str) -> None:
    """Invoke the function with a probe event and check the handler's own answer."""
    what = "invoke the function with a probe event"
    if not dep.runtime_checks:
        report.skip(what, dep.runtime_skip_reason("run Lambda code"))
        return
    event, key = probe_event(bucket, dep.region)
    with report.check(f"{what} (key {key}, outside landing/): answered 'ignored'") as note:
        resp = dep.client("lambda").invoke(
            FunctionName=name, InvocationType="RequestResponse", LogType="Tail", Payload=json.dumps(event).encode()
        )
        payload = resp["Payload"].read()
        tail = base64.b64decode(resp.get("LogResult", "") or b"").decode(errors="replace").strip().splitlines()[-5:]
        expect(resp.get("StatusCode") == 200, f"invoke status {resp.get('StatusCode')}")
        if resp.get("FunctionError"):
            raise CheckFailed(f"the function failed ({resp['FunctionError']}): {payload[:500]!r}; log: {tail}")
        try:
            answer = json.loads(payload or b"null")
        except ValueError as exc:
            raise CheckFailed(f"the answer is not JSON: {payload[:300]!r}") from exc
        check_probe_answer(answer, key)
        note["detail"] = f"{resp.get('ExecutedVersion', '$LATEST')}: {json.dumps(answer)[:120]}"


def main(argv: list[str] | None = None, session=None) -> int:
    p = base_parser(__doc__)
    p.add_argument(
        "--lambda-zip", default=str(DEFAULT_LAMBDA_ZIP), help="the zip the deploy built (default dist/lambda/)"
    )
    args = p.parse_args(argv)
    report = Report("lambda")
    dep = open_deployment(args, report, session=session)
    if dep is not None:
        run_checks(dep, report)
    return report.summary()


if __name__ == "__main__":
    sys.exit(main())
