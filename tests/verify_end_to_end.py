"""Deployment check: the bucket, then a file dropped under landing/ produces the expected outcome.

    pipenv run python tests/verify_end_to_end.py [--env dev] [--timeout 300]
    pipenv run python tests/verify_end_to_end.py --endpoint-url URL --invoke-handler-locally

A small valid CSV must be copied to raw/ and start a run of the training job; a broken one must be
moved to quarantine/ with ``<name>.reason.json``. Against a real account the deployed Lambda does the
work (S3 event) and this script waits for it; note that the valid file starts a real training run.
The emulator does not run Lambda code, so ``--invoke-handler-locally`` builds the Lambda zip as ``deploy``
does, unpacks it into a stand-in for the python3.11 runtime (``shipped_lambda.py``) and calls the handler
there with the S3 event the bucket would send, configured with the deployed function's own environment.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse
import uuid
from datetime import UTC, datetime

from verify_common import Report, base_parser, expect, expect_equal, open_deployment

HEADER = (
    ",trans_date_trans_time,cc_num,merchant,category,amt,first,last,gender,street,city,state,zip,lat,long,"
    "city_pop,job,dob,trans_num,unix_time,merch_lat,merch_long,is_fraud"
)
VALID_ROWS = [
    '0,2019-01-12 20:29:13,4616225647185595,"fraud_Heathcote, Yost and Kertzmann",shopping_net,2.65,Cynthia,'
    "Sanchez,F,379 Miller Circle Apt. 002,Prairie Creek,IN,47869,39.4336,-87.4101,137,Television camera operator,"
    "1986-08-12,807f9ec4fb90ac06c054694a2f666f97,1547324953,40.201325,-86.884803,0",
    '1,2019-01-16 11:55:00,38459984133763,"fraud_Casper, Hand and Zulauf",grocery_pos,100.53,Mark,Rocha,M,'
    "92361 Ashley Crossroad,Crook,CO,80726,40.8747,-102.8472,381,Emergency planning/management officer,"
    "1985-11-24,9e03b63d1255b33f37aa3bd2df54ac92,1547639700,39.985184,-101.889366,0",
]


def valid_csv() -> bytes:
    return ("\n".join([HEADER, *VALID_ROWS]) + "\n").encode()


def broken_csv() -> bytes:
    # wrong columns and an unparseable amount: violates the data contract
    return b"when,card,amount\nyesterday,1234,lots\n"


def s3_event(bucket: str, key: str, size: int, etag: str, sequencer: str) -> dict:
    """The ObjectCreated:Put event S3 delivers (key URL-encoded, as S3 does)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": os.environ.get("AWS_REGION", "us-east-1"),
                "eventTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "landing",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {
                        "key": urllib.parse.quote_plus(key, safe="/"),
                        "size": size,
                        "eTag": etag,
                        "sequencer": sequencer,
                    },
                },
            }
        ]
    }


def _find(s3, bucket: str, prefix: str, name: str) -> list[str]:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].rsplit("/", 1)[-1].startswith(name)]
    return keys


def _exists(s3, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except s3.exceptions.ClientError:
        return False


def run_bucket_checks(dep, report: Report) -> None:
    s3, bucket = dep.client("s3"), dep.bucket
    with report.check(f"bucket {bucket} versioned"):
        expect_equal(s3.get_bucket_versioning(Bucket=bucket).get("Status"), "Enabled", "versioning")
    with report.check("default encryption") as note:
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        algos = [r["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] for r in rules]
        expect(any(a in ("AES256", "aws:kms", "aws:kms:dsse") for a in algos), f"algorithms {algos}")
        note["detail"] = ",".join(algos)
    with report.check("public access blocked"):
        pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        off = [k for k, v in pab.items() if v is not True]
        expect(not off, f"not blocked: {off}")
    with report.check("bucket policy denies requests without TLS"):
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
        ok = False
        for st in policy.get("Statement", []):
            cond = json.dumps(st.get("Condition", {})).lower()
            actions = [
                a.lower() for a in (st.get("Action") if isinstance(st.get("Action"), list) else [st.get("Action")])
            ]
            resources = json.dumps(st.get("Resource"))
            if (
                st.get("Effect") == "Deny"
                and '"aws:securetransport": "false"' in cond
                and ("s3:*" in actions or "*" in actions)
                and f"arn:aws:s3:::{bucket}/*" in resources
            ):
                ok = True
        expect(ok, "no Deny of s3:* on the bucket's objects when aws:SecureTransport is false")


def _invoke_locally(dep, events: list[dict]) -> list:
    """Run the handler as it ships: the zip ``deploy`` builds, unpacked into the stand-in for the python3.11
    Lambda runtime (``shipped_lambda.py``), in a subprocess configured with the deployed function's
    environment. A handler error fails the check, as a failed invocation would."""
    import shipped_lambda
    import standin_env

    lam = dep.client("lambda")
    fn_env = lam.get_function_configuration(FunctionName=dep.output("RetrainFunctionName"))["Environment"]["Variables"]
    env = {**fn_env, **shipped_lambda.aws_env(dep.region, dep.endpoint_url, dep.session)}
    with standin_env.scratch("verify-lambda") as work:
        invocations = shipped_lambda.invoke(shipped_lambda.build_and_unpack(work), events, env)
    failed = [r for r in invocations.results if "errorType" in r]
    if failed:
        raise RuntimeError(f"the handler failed: {failed}\n{invocations.log[-2000:]}")
    return [r["result"] for r in invocations.results]


def run_functional_checks(dep, report: Report, *, invoke_locally: bool, timeout: float) -> None:
    s3, glue, bucket = dep.client("s3"), dep.client("glue"), dep.bucket
    job = dep.output("GlueJobName")
    tag = f"verify-e2e-{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    good_name, bad_name = f"{tag}-valid.csv", f"{tag}-broken.csv"
    started = datetime.now(UTC)
    runs_before = {r["Id"] for r in glue.get_job_runs(JobName=job).get("JobRuns", [])}
    events = []
    with report.check("put a valid and a broken CSV under landing/") as note:
        for name, body in ((good_name, valid_csv()), (bad_name, broken_csv())):
            key = f"landing/{name}"
            put = s3.put_object(Bucket=bucket, Key=key, Body=body)
            events.append(s3_event(bucket, key, len(body), put["ETag"].strip('"'), uuid.uuid4().hex[:16].upper()))
        note["detail"] = f"landing/{tag}-*.csv"
    if invoke_locally:
        with report.check("handler invoked in-process with the S3 events") as note:
            results = _invoke_locally(dep, events)
            note["detail"] = json.dumps(results, default=str)[:200]

    deadline = time.monotonic() + (5 if invoke_locally else timeout)
    raw, quarantined, reason, new_runs = [], [], [], []
    while True:
        raw = _find(s3, bucket, "raw/", good_name)
        quarantined = [k for k in _find(s3, bucket, "quarantine/", bad_name) if not k.endswith(".reason.json")]
        reason = [k for k in _find(s3, bucket, "quarantine/", bad_name) if k.endswith(".reason.json")]
        new_runs = [
            r for r in glue.get_job_runs(JobName=job).get("JobRuns", [])
            if r["Id"] not in runs_before and r.get("StartedOn", started) >= started.replace(microsecond=0)
        ]  # fmt: skip
        if (raw and quarantined and reason and new_runs) or time.monotonic() > deadline:
            break
        time.sleep(5)

    with report.check("valid file copied to raw/") as note:
        expect(raw, f"no raw/ object named {good_name} after {timeout:.0f}s")
        note["detail"] = raw[0]
    with report.check("valid file started a run of the training job") as note:
        expect(new_runs, f"no new run of {job} since {started:%H:%M:%S}")
        note["detail"] = f"{new_runs[0]['Id']} ({new_runs[0].get('JobRunState')})"
    with report.check("broken file moved to quarantine/ with its reason") as note:
        expect(quarantined, f"no quarantine/ object named {bad_name}")
        expect(reason, f"no {bad_name}.reason.json under quarantine/")
        body = json.loads(s3.get_object(Bucket=bucket, Key=reason[0])["Body"].read())
        expect(body, "reason.json is empty")
        expect(not _exists(s3, bucket, f"landing/{bad_name}"), "the broken file is still under landing/")
        note["detail"] = reason[0]
    with report.check("broken file started no run") as note:
        args = json.dumps([r.get("Arguments", {}) for r in new_runs])
        expect(bad_name not in args, f"a run was started with {bad_name}")
        note["detail"] = f"{len(new_runs)} new run(s)"


def main(argv: list[str] | None = None, session=None) -> int:
    p = base_parser(__doc__)
    p.add_argument("--invoke-handler-locally", action="store_true", help="emulator: run the handler in-process")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the deployed Lambda")
    p.add_argument("--no-functional", action="store_true", help="bucket checks only (starts no training)")
    args = p.parse_args(argv)
    report = Report("e2e")
    dep = open_deployment(args, report, session=session)
    if dep is not None:
        run_bucket_checks(dep, report)
        if args.no_functional:
            report.info("functional checks", "skipped (--no-functional)")
        else:
            run_functional_checks(dep, report, invoke_locally=args.invoke_handler_locally, timeout=args.timeout)
    return report.summary()


if __name__ == "__main__":
    sys.exit(main())
