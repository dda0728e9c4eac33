"""Deployment check: the bucket, then a file dropped under landing/ produces the expected outcome.

    pipenv run python tests/verify_end_to_end.py [--env dev] [--timeout 300]
    pipenv run python tests/verify_end_to_end.py --endpoint-url URL --invoke-handler-locally

A small valid CSV must be copied to raw/ and start *its* run of the training job: the launch record
``runs/requests/<run_id>.json`` lists the file's raw/ key, and the Glue job run it names was started
with ``--run_id <run_id>``. A broken one must be moved to quarantine/ with ``<name>.reason.json`` and be
in no launch record. Against a real account the deployed Lambda does the work (S3 event) and this
script waits for it; note that the valid file starts a real training run. The emulator does not run
Lambda code, so ``--invoke-handler-locally`` builds the Lambda zip as ``deploy`` does, unpacks it into a
stand-in for the python3.11 runtime (``shipped_lambda.py``) and calls the handler there
(``_invoke_locally``) with the S3 events the bucket would send, configured with the deployed function's
own environment.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from datetime import UTC, datetime

from verify_common import CheckFailed, Report, base_parser, expect, expect_equal, open_deployment, s3_event

REQUESTS_PREFIX = "runs/requests/"  # fraud_detection.launcher.REQUESTS: one launch record per run_id

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
    check_plain_http_refused(dep, report)


def check_plain_http_refused(dep, report: Report) -> None:
    """Behaviour, not the policy text: an object this caller can read over TLS is refused over plain HTTP."""
    name = "an object readable over TLS is refused over plain HTTP"
    if not dep.runtime_checks:
        report.skip(name, f"the emulator at {dep.endpoint_url} serves plain HTTP only and applies no TLS condition")
        return
    s3, bucket = dep.client("s3"), dep.bucket
    listed = s3.list_objects_v2(Bucket=bucket, MaxKeys=1).get("Contents", [])
    if not listed:
        report.skip(name, f"s3://{bucket} is empty: nothing to read (run the deploy first)")
        return
    key = listed[0]["Key"]
    plain_endpoint = (
        "http://" + dep.endpoint_url.split("://", 1)[1] if dep.endpoint_url else f"http://s3.{dep.region}.amazonaws.com"
    )
    plain = dep.session.client("s3", region_name=dep.region, endpoint_url=plain_endpoint, use_ssl=False)
    with report.check(name) as note:
        s3.head_object(Bucket=bucket, Key=key)  # readable over TLS: a refusal below is the TLS rule's
        try:
            plain.head_object(Bucket=bucket, Key=key)
        except plain.exceptions.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            expect(code in ("403", "AccessDenied"), f"plain HTTP answered {code}, not 403")
            note["detail"] = f"HEAD {key} over http: {code}"
        else:
            raise CheckFailed(f"s3://{bucket}/{key} was served over plain HTTP ({plain_endpoint})")


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


def _launch_records(s3, bucket: str, since: datetime) -> dict[str, dict]:
    """run_id -> launch record, for the records written since ``since``."""
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=REQUESTS_PREFIX):
        for o in page.get("Contents", []):
            if o["Key"].endswith(".json") and o["LastModified"] >= since:
                rec = json.loads(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
                out[rec.get("run_id", o["Key"])] = rec | {"_key": o["Key"]}
    return out


def _run_covering(records: dict[str, dict], raw_key: str) -> dict | None:
    """The launch record whose files hold ``raw_key``, following ``merged_into`` to the run that covers it."""
    rec = next((r for r in records.values() if raw_key in (r.get("files") or [])), None)
    for _ in range(len(records)):
        if rec is None or not rec.get("merged_into"):
            break
        rec = records.get(rec["merged_into"], rec | {"merged_into": None, "_unknown_target": rec["merged_into"]})
    return rec


def run_functional_checks(dep, report: Report, *, invoke_locally: bool, timeout: float) -> None:
    s3, glue, bucket = dep.client("s3"), dep.client("glue"), dep.bucket
    job = dep.output("GlueJobName")
    # The "Z" keeps the time's digits apart from the random part: intake renames a file whose name holds
    # 11 or more digits in a run (dashes allowed, as in a card number), and the checks look for the name.
    tag = f"verify-e2e-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    good_name, bad_name = f"{tag}-valid.csv", f"{tag}-broken.csv"
    started = datetime.now(UTC).replace(microsecond=0)
    events = []
    with report.check("put a valid and a broken CSV under landing/: stored versioned and encrypted") as note:
        for name, body in ((good_name, valid_csv()), (bad_name, broken_csv())):
            key = f"landing/{name}"
            put = s3.put_object(Bucket=bucket, Key=key, Body=body)
            # what the bucket does with a write (not its configuration read back): versioned, encrypted
            expect(
                put.get("VersionId") not in (None, "", "null"),
                f"s3://{bucket}/{key} got no version id: versioning is off",
            )
            expect(put.get("ServerSideEncryption"), f"s3://{bucket}/{key} was stored unencrypted")
            events.append(
                s3_event(bucket, key, len(body), put["ETag"].strip('"'), uuid.uuid4().hex[:16].upper(), dep.region)
            )
        note["detail"] = f"landing/{tag}-*.csv"
    handled: list = []
    if invoke_locally:
        with report.check("shipped handler (python3.11 stand-in) handles the S3 events") as note:
            handled = _invoke_locally(dep, events)
            note["detail"] = json.dumps(handled, default=str)[:200]

    waited = 0 if invoke_locally else timeout  # the local handler has finished: nothing to wait for
    deadline = time.monotonic() + waited
    raw, quarantined, reason, records, run = [], [], [], {}, None
    while True:
        raw = _find(s3, bucket, "raw/", good_name)
        quarantined = [k for k in _find(s3, bucket, "quarantine/", bad_name) if not k.endswith(".reason.json")]
        reason = [k for k in _find(s3, bucket, "quarantine/", bad_name) if k.endswith(".reason.json")]
        records = _launch_records(s3, bucket, started)
        run = _run_covering(records, raw[0]) if raw else None
        if (quarantined and reason and run and run.get("job_run_id")) or time.monotonic() > deadline:
            break
        time.sleep(5)

    with report.check("valid file copied unchanged to raw/ and removed from landing/") as note:
        expect(raw, f"no raw/ object named {good_name} after {waited:.0f}s")
        expect(s3.get_object(Bucket=bucket, Key=raw[0])["Body"].read() == valid_csv(), f"{raw[0]} differs")
        expect(not _exists(s3, bucket, f"landing/{good_name}"), "the valid file is still under landing/")
        note["detail"] = raw[0]
    with report.check("valid file started its run: launch record lists it, the Glue run carries its run_id") as note:
        expect(raw, "no raw/ copy, so no run can list it")
        expect(run, f"no {REQUESTS_PREFIX}<run_id>.json written since {started:%H:%M:%S} lists {raw[0]}")
        expect(not run.get("_unknown_target"), f"{run['_key']} was merged into {run.get('_unknown_target')}, "
                                               "which has no launch record")  # fmt: skip
        run_id, job_run_id = run.get("run_id"), run.get("job_run_id")
        expect(job_run_id, f"{run['_key']} is {run.get('status')!r} with no Glue run (queued behind a running job?)")
        job_run = glue.get_job_run(JobName=job, RunId=job_run_id)["JobRun"]
        expect_equal(job_run.get("Arguments", {}).get("--run_id"), run_id, f"--run_id of Glue run {job_run_id}")
        if handled:
            said = {f.get("key"): f.get("run_id") for r in handled for f in (r or {}).get("files", [])}
            expect_equal(said.get(f"landing/{good_name}"), run_id, "run_id the handler answered for the valid file")
        note["detail"] = f"run {run_id} = Glue {job_run_id} ({job_run.get('JobRunState')})"
    with report.check("broken file moved to quarantine/ with its reason") as note:
        expect(quarantined, f"no quarantine/ object named {bad_name}")
        expect(reason, f"no {bad_name}.reason.json under quarantine/")
        body = json.loads(s3.get_object(Bucket=bucket, Key=reason[0])["Body"].read())
        expect(isinstance(body, dict) and body.get("error"), f"reason.json says no error: {body!r:.200}")
        expect_equal(body.get("source"), f"landing/{bad_name}", "reason.json source")
        expect(not _exists(s3, bucket, f"landing/{bad_name}"), "the broken file is still under landing/")
        note["detail"] = f"{reason[0]}: {body['error'][:80]}"
    with report.check("broken file reached neither raw/ nor any launch record") as note:
        expect(not _find(s3, bucket, "raw/", bad_name), f"{bad_name} was copied to raw/")
        listing = [r["_key"] for r in records.values() if any(bad_name in f for f in r.get("files") or [])]
        expect(not listing, f"launch records list {bad_name}: {listing}")
        note["detail"] = f"{len(records)} launch record(s) since {started:%H:%M:%S}"


def main(argv: list[str] | None = None, session=None) -> int:
    p = base_parser(__doc__)
    p.add_argument("--invoke-handler-locally", action="store_true", help="emulator: run the shipped zip here")
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
