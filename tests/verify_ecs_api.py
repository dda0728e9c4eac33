"""Deployment check: the scoring API on ECS Fargate behind the ALB — tasks running, deployment steady,
a healthy target — its scaling, alarms and tables; then, where reachable, ``/ready`` and one scored
transaction.

    pipenv run python tests/verify_ecs_api.py [--env dev] [--api-url https://...] [--api-key KEY]
        [--alarm-email ADDRESS]

The emulator runs no task: there the running-task, deployment and target-health checks print SKIP with
the reason instead of passing.

Without ``--api-url`` the functional checks use the load balancer's DNS name from the stack. The key
comes from ``--api-key`` or ``FRAUD_API_KEY`` (create one with ``fraud deploy --new-api-key ID``).
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.request

from verify_common import (
    Report,
    base_parser,
    check_alarm_topic,
    check_log_group,
    check_role,
    check_table,
    expect,
    expect_equal,
    expect_notifies_only,
    open_deployment,
)

CONTAINER_PORT = 8000
# The path the load balancer's health check must probe: liveness. /ready answers 503 until a model is
# published, so a first deploy (image before any training) would be rolled back by the circuit breaker.
TARGET_HEALTH_PATH = "/health"
REQUIRED_SECRETS = ("FRAUD_CARD_HASH_KEY", "FRAUD_API_KEYS")
# One row of the published Kaggle format (tests' data/sample.csv, first row), fields named as the columns.
EXAMPLE_TRANSACTION = {
    "trans_date_trans_time": "2019-01-12 20:29:13",
    "cc_num": "4616225647185595",
    "merchant": "fraud_Heathcote, Yost and Kertzmann",
    "category": "shopping_net",
    "amt": 2.65,
    "first": "Cynthia",
    "last": "Sanchez",
    "gender": "F",
    "street": "379 Miller Circle Apt. 002",
    "city": "Prairie Creek",
    "state": "IN",
    "zip": 47869,
    "lat": 39.4336,
    "long": -87.4101,
    "city_pop": 137,
    "job": "Television camera operator",
    "dob": "1986-08-12",
    "trans_num": "807f9ec4fb90ac06c054694a2f666f97",
    "unix_time": 1547324953,
    "merch_lat": 40.201325,
    "merch_long": -86.884803,
    "is_fraud": 0,
}


def run_config_checks(dep, report: Report) -> None:
    ecs, elb = dep.client("ecs"), dep.client("elbv2")
    cluster_name, service_name = dep.output("ClusterName"), dep.output("ServiceName")
    tg_arn, lb_arn = dep.output("TargetGroupArn"), dep.output("LoadBalancerArn")

    with report.check(f"cluster {cluster_name} active with Container Insights"):
        cluster = ecs.describe_clusters(clusters=[cluster_name], include=["SETTINGS"])["clusters"]
        expect(cluster and cluster[0]["status"] == "ACTIVE", f"cluster {cluster_name} not ACTIVE")
        settings = {s["name"]: s["value"] for s in cluster[0].get("settings", [])}
        expect(settings.get("containerInsights") in ("enabled", "enhanced"), "containerInsights is not enabled")

    service: dict = {}
    with report.check(f"service {service_name}: Fargate in private subnets, no public IP") as note:
        services = ecs.describe_services(cluster=cluster_name, services=[service_name])["services"]
        expect(services and services[0].get("status") == "ACTIVE", f"service {service_name} not found/active")
        service = services[0]
        expect_equal(service.get("launchType"), "FARGATE", "launch type")
        vpc = service.get("networkConfiguration", {}).get("awsvpcConfiguration", {})
        expect_equal(vpc.get("assignPublicIp"), "DISABLED", "assignPublicIp")
        expect(vpc.get("subnets"), "no subnets")
        note["detail"] = f"subnets {','.join(vpc['subnets'])}"
    with report.check("service registers container port 8000 in the stack's target group"):
        lbs = service.get("loadBalancers", [])
        expect(
            any(x.get("targetGroupArn") == tg_arn and x.get("containerPort") == CONTAINER_PORT for x in lbs),
            f"service load balancers {lbs} do not include {tg_arn}:{CONTAINER_PORT}",
        )
    check_running(dep, report, service, tg_arn)
    td: dict = {}
    with report.check("task definition: Fargate, awsvpc, port 8000") as note:
        td = ecs.describe_task_definition(
            taskDefinition=service.get("taskDefinition") or dep.output("TaskDefinitionArn")
        )["taskDefinition"]
        expect("FARGATE" in td.get("requiresCompatibilities", []), "not FARGATE-compatible")
        expect_equal(td.get("networkMode"), "awsvpc", "network mode")
        containers = td.get("containerDefinitions", [])
        expect(len(containers) == 1, f"{len(containers)} containers, expected 1")
        ports = [p.get("containerPort") for p in containers[0].get("portMappings", [])]
        expect_equal(ports, [CONTAINER_PORT], "container ports")
        note["detail"] = f"{td['family']}:{td['revision']} cpu {td.get('cpu')} memory {td.get('memory')}"
    if not td:
        return
    c = td["containerDefinitions"][0]
    with report.check("container health check probes /health without curl") as note:
        hc = c.get("healthCheck") or {}
        command = " ".join(hc.get("command", []))
        expect(command, "no container health check")
        expect("/health" in command, f"health check does not probe /health: {command!r}")
        expect("curl" not in command and "wget" not in command, "health check relies on curl/wget (not in the image)")
        note["detail"] = f"every {hc.get('interval')}s, {hc.get('retries')} retries"
    with report.check("read-only root filesystem, non-root user") as note:
        expect(c.get("readonlyRootFilesystem") is True, "readonlyRootFilesystem is not true")
        user = str(c.get("user", ""))
        expect(user and user.split(":")[0] not in ("0", "root"), f"user is {user!r} (root)")
        note["detail"] = f"user {user}"
    log_group = None
    with report.check("awslogs to a CloudWatch log group") as note:
        logc = c.get("logConfiguration") or {}
        expect_equal(logc.get("logDriver"), "awslogs", "log driver")
        log_group = logc.get("options", {}).get("awslogs-group")
        expect(log_group, "no awslogs-group")
        note["detail"] = log_group
    if log_group:
        check_log_group(report, dep, "API", log_group)
    env = {e["name"]: e["value"] for e in c.get("environment", [])}
    with report.check("environment: store, DynamoDB backend and tables"):
        expected = {
            "FRAUD_STORE_URI": f"s3://{dep.bucket}",
            "FRAUD_KV_BACKEND": "dynamodb",
            "FRAUD_PREDICTION_LOG_TABLE": dep.output("PredictionLogTableName"),
            "FRAUD_CARD_HISTORY_TABLE": dep.output("CardHistoryTableName"),
        }
        wrong = {k: env.get(k) for k, v in expected.items() if env.get(k) != v}
        expect(not wrong, f"unexpected {wrong}; expected {expected}")
    with report.check("keys injected from Secrets Manager / SSM, none in plain environment"):
        secrets = {s["name"]: s["valueFrom"] for s in c.get("secrets", [])}
        missing = [s for s in REQUIRED_SECRETS if s not in secrets]
        expect(not missing, f"secrets missing: {missing}")
        bad = {k: v for k, v in secrets.items() if not v.startswith(("arn:aws:secretsmanager:", "arn:aws:ssm:"))}
        expect(not bad, f"secrets not from Secrets Manager/SSM: {bad}")
        leaked = [k for k in env if k in REQUIRED_SECRETS or "KEY" in k.upper()]
        expect(not leaked, f"key-like variables in the plain environment: {leaked}")
    check_role(report, dep, "task", td.get("taskRoleArn", ""), "ecs-tasks.amazonaws.com", "ApiTaskRoleArn")
    check_role(
        report, dep, "task execution", td.get("executionRoleArn", ""), "ecs-tasks.amazonaws.com", "ApiExecutionRoleArn"
    )
    with report.check("image is pushed to the stack's ECR repository, scanned on push") as note:
        repo_uri = dep.output("ApiRepositoryUri")
        image = c.get("image", "")
        expect(image.startswith(repo_uri + ":"), f"image {image!r} is not in {repo_uri}")
        ecr, repo_name, tag = dep.client("ecr"), repo_uri.rsplit("/", 1)[1], image.rsplit(":", 1)[1]
        repo = ecr.describe_repositories(repositoryNames=[repo_name])["repositories"][0]
        expect(repo.get("imageScanningConfiguration", {}).get("scanOnPush"), "scanOnPush is off")
        try:  # a task definition naming a tag that was never pushed can start no task
            found = ecr.describe_images(repositoryName=repo_name, imageIds=[{"imageTag": tag}])["imageDetails"]
        except ecr.exceptions.ImageNotFoundException:
            found = []
        expect(found, f"{repo_name}:{tag} is not in the repository: build and push it (see the deploy output)")
        note["detail"] = f"{repo_name}:{tag} {found[0].get('imageDigest', '')[:19]}"

    # liveness: /ready is 503 until a model is published, and the first deploy precedes any training
    with report.check(f"target group health check on {TARGET_HEALTH_PATH}") as note:
        tg = elb.describe_target_groups(TargetGroupArns=[tg_arn])["TargetGroups"][0]
        expect_equal(tg.get("HealthCheckPath"), TARGET_HEALTH_PATH, "health check path")
        expect_equal(tg.get("TargetType"), "ip", "target type")
        expect_equal(tg.get("Port"), CONTAINER_PORT, "port")
        note["detail"] = f"{tg.get('HealthCheckProtocol')} {tg.get('HealthCheckPath')}"
    with report.check("ALB serves HTTPS with a certificate; plain HTTP only redirects") as note:
        listeners = elb.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]
        https = [x for x in listeners if x["Protocol"] == "HTTPS"]
        expect(https, "no HTTPS listener")
        expect(all(x.get("Certificates") for x in https), "HTTPS listener without certificate")
        expect(
            any(a.get("TargetGroupArn") == tg_arn for x in https for a in x.get("DefaultActions", [])),
            "HTTPS listener does not forward to the API target group",
        )
        for x in listeners:
            if x["Protocol"] == "HTTP":
                types = {a["Type"] for a in x.get("DefaultActions", [])}
                expect(types == {"redirect"}, f"HTTP listener on port {x['Port']} does {types}, not only redirect")
        note["detail"] = ", ".join(f"{x['Protocol']}:{x['Port']}" for x in listeners)

    aas = dep.client("application-autoscaling")
    resource_id = f"service/{cluster_name}/{service_name}"
    with report.check("autoscaling target for the service") as note:
        targets = aas.describe_scalable_targets(ServiceNamespace="ecs", ResourceIds=[resource_id])["ScalableTargets"]
        expect(targets, f"no scalable target for {resource_id}")
        t = targets[0]
        expect(t["MaxCapacity"] >= t["MinCapacity"] >= 1, f"capacity {t['MinCapacity']}..{t['MaxCapacity']}")
        note["detail"] = f"{t['MinCapacity']}..{t['MaxCapacity']} tasks"
    with report.check("target tracking on CPU and on requests per target"):
        policies = aas.describe_scaling_policies(ServiceNamespace="ecs", ResourceId=resource_id)["ScalingPolicies"]
        kinds = {
            p.get("TargetTrackingScalingPolicyConfiguration", {})
            .get("PredefinedMetricSpecification", {})
            .get("PredefinedMetricType")
            for p in policies
            if p.get("PolicyType") == "TargetTrackingScaling"
        }
        missing = {"ECSServiceAverageCPUUtilization", "ALBRequestCountPerTarget"} - kinds
        expect(not missing, f"no target-tracking policy on {sorted(missing)}")

    check_alarms(dep, report, tg_arn)
    with report.check("WAF web ACL (optional)") as note:
        try:
            acl = dep.client("wafv2").get_web_acl_for_resource(ResourceArn=lb_arn).get("WebACL")
        except dep.client("wafv2").exceptions.WAFNonexistentItemException:
            acl = None
        if acl:
            rate = [r for r in acl.get("Rules", []) if "RateBasedStatement" in r.get("Statement", {})]
            expect(rate, f"web ACL {acl['Name']} has no rate-based rule")
            note["detail"] = f"{acl['Name']}: rate limit {rate[0]['Statement']['RateBasedStatement']['Limit']}/5 min"
        else:
            note["detail"] = "not enabled (EnableWaf=false)"

    check_table(report, dep, "prediction log", dep.output("PredictionLogTableName"), [("prediction_id", "S", "HASH")])
    check_table(
        report, dep, "card history", dep.output("CardHistoryTableName"),
        [("card_key", "S", "HASH"), ("ts_id", "S", "RANGE")],
    )  # fmt: skip


def check_running(dep, report: Report, service: dict, tg_arn: str) -> None:
    """Tasks running as desired, the deployment finished, and the load balancer sees a healthy target."""
    names = (
        "service keeps its tasks running (runningCount >= 1 and = desiredCount)",
        "deployment steady (one deployment, rolloutState COMPLETED)",
        "target group has a healthy target",
    )
    if not dep.runtime_checks:
        for name in names:
            report.skip(name, dep.runtime_skip_reason("run ECS tasks"))
        return
    ecs, cluster = dep.client("ecs"), dep.output("ClusterName")
    with report.check(names[0]) as note:
        desired, running = service.get("desiredCount", 0), service.get("runningCount", 0)
        expect(desired >= 1, "desiredCount is 0: push the image and deploy with --api-image-tag")
        if running < 1 or running != desired:
            raise AssertionError(f"running {running} of {desired} desired{_stopped_reasons(ecs, cluster, service)}")
        note["detail"] = f"{running} of {desired}"
    with report.check(names[1]) as note:
        deployments = service.get("deployments", [])
        primary = [d for d in deployments if d.get("status") == "PRIMARY"]
        expect(primary, "no PRIMARY deployment")
        state = primary[0].get("rolloutState")
        expect(state == "COMPLETED", f"rolloutState {state} ({primary[0].get('rolloutStateReason', '')}); "
                                     f"failed tasks {primary[0].get('failedTasks', 0)}")  # fmt: skip
        others = [f"{d.get('status')} {d.get('taskDefinition', '').rsplit('/', 1)[-1]}" for d in deployments[1:]]
        expect(len(deployments) == 1, f"{len(deployments)} deployments: {others} still running beside the primary")
        note["detail"] = f"{primary[0].get('id')} COMPLETED"
    with report.check(names[2]) as note:
        health = dep.client("elbv2").describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]
        states = [f"{h['Target']['Id']}: {h['TargetHealth'].get('State')} {h['TargetHealth'].get('Reason', '')}"
                  for h in health]  # fmt: skip
        healthy = [h for h in health if h["TargetHealth"].get("State") == "healthy"]
        expect(healthy, f"no healthy target in the target group (targets: {states or 'none registered'})")
        note["detail"] = f"{len(healthy)} of {len(health)} healthy"


def _stopped_reasons(ecs, cluster: str, service: dict) -> str:
    """Why the service's recent tasks stopped (what a crash loop looks like), for the failure message."""
    try:
        arns = ecs.list_tasks(cluster=cluster, serviceName=service["serviceName"], desiredStatus="STOPPED")["taskArns"]
        tasks = ecs.describe_tasks(cluster=cluster, tasks=arns[:5])["tasks"] if arns else []
    except Exception as exc:  # noqa: BLE001 - only decorates a failure message
        return f" (stopped tasks unreadable: {exc})"
    reasons = sorted({t.get("stoppedReason", "?") for t in tasks})
    return f"; recently stopped tasks: {reasons}" if reasons else ""


def _alb_metric_dims(a: dict) -> list[dict]:
    return [d for m in a.get("Metrics", []) for d in m.get("MetricStat", {}).get("Metric", {}).get("Dimensions", [])]


def check_alarms(dep, report: Report, tg_arn: str) -> None:
    """The API's alarms select the metrics of the load balancer in front of the service, and notify the topic."""
    topic = check_alarm_topic(report, dep)
    tg = dep.client("elbv2").describe_target_groups(TargetGroupArns=[tg_arn])["TargetGroups"][0]
    # the load balancer that actually forwards to the service's target group, not the stack's output
    lbs = [arn.split(":loadbalancer/", 1)[-1] for arn in tg.get("LoadBalancerArns", [])]
    alarms = dep.alarms()
    with report.check("alarm on the API 5xx rate (5xx / requests) notifies the alarm topic") as note:
        expect(lbs, f"target group {tg_arn} is behind no load balancer")
        found = []
        for a in alarms:
            stats = [m["MetricStat"]["Metric"] for m in a.get("Metrics", []) if "MetricStat" in m]
            names = {m.get("MetricName") for m in stats}
            spaces = {m.get("Namespace") for m in stats}
            dims = _alb_metric_dims(a)
            if (
                {"HTTPCode_Target_5XX_Count", "RequestCount"} <= names
                and spaces == {"AWS/ApplicationELB"}
                and all(d == {"Name": "LoadBalancer", "Value": lbs[0]} for d in dims)
            ):
                found.append(a)
        expect(found, f"no metric-math alarm on HTTPCode_Target_5XX_Count / RequestCount of {lbs[0]}")
        expect_notifies_only(found[0], topic)
        note["detail"] = found[0]["AlarmName"]
    with report.check("alarm on p99 latency notifies the alarm topic") as note:
        expect(lbs, f"target group {tg_arn} is behind no load balancer")
        found = [
            a for a in alarms
            if a.get("Namespace") == "AWS/ApplicationELB" and a.get("MetricName") == "TargetResponseTime"
            and a.get("ExtendedStatistic") == "p99"
            and a.get("Dimensions") == [{"Name": "LoadBalancer", "Value": lbs[0]}]
        ]  # fmt: skip
        expect(found, f"no p99 TargetResponseTime alarm on {lbs[0]}")
        expect_notifies_only(found[0], topic)
        note["detail"] = f"{found[0]['AlarmName']} > {found[0]['Threshold']} s"


def _request(url: str, *, body: dict | None = None, headers: dict | None = None, timeout: float = 10.0):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")  # noqa: S310 - http(s) only
    req.add_header("Accept", "application/json")
    if data:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ssl.create_default_context()) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        text = exc.read()[:300].decode(errors="replace")
        return exc.code, text


def run_functional_checks(base_url: str, api_key: str | None, report: Report) -> None:
    base_url = base_url.rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        base_url = "https://" + base_url
    with report.check(f"GET {base_url}/ready answers 200 (a verified model is loaded)") as note:
        status, body = _request(f"{base_url}/ready")
        expect(status == 200, f"status {status}: {body}")
        note["detail"] = f"model {body.get('model_version') if isinstance(body, dict) else body}"
    with report.check("POST /v1/score without a key is refused"):
        status, body = _request(f"{base_url}/v1/score", body=EXAMPLE_TRANSACTION)
        expect(status in (401, 403), f"status {status} (expected 401/403): the API is open")
    with report.check("POST /v1/score scores the example transaction") as note:
        expect(api_key, "no API key: pass --api-key or set FRAUD_API_KEY")
        status, body = _request(f"{base_url}/v1/score", body=EXAMPLE_TRANSACTION, headers={"X-API-Key": api_key})
        expect(status == 200, f"status {status}: {body}")
        p = body.get("fraud_probability") if isinstance(body, dict) else None
        expect(isinstance(p, int | float) and 0.0 <= p <= 1.0, f"no fraud_probability in [0, 1] in {body}")
        expect_equal(body.get("trans_num"), EXAMPLE_TRANSACTION["trans_num"], "trans_num echoed")
        note["detail"] = f"p={p:.4f}, is_fraud={body.get('is_fraud')}"


def main(argv: list[str] | None = None, session=None) -> int:
    p = base_parser(__doc__)
    p.add_argument(
        "--api-url", default=os.environ.get("FRAUD_API_URL"), help="default: https://<ALB DNS> from the stack"
    )
    p.add_argument("--api-key", default=os.environ.get("FRAUD_API_KEY"))
    p.add_argument("--no-functional", action="store_true", help="configuration checks only")
    args = p.parse_args(argv)
    report = Report("api")
    dep = open_deployment(args, report, session=session)
    if dep is not None:
        run_config_checks(dep, report)
    if args.no_functional:
        report.info("functional checks", "skipped (--no-functional)")
    else:
        url = args.api_url or (dep.outputs.get("ApiUrl") if dep else None)
        if url:
            run_functional_checks(url, args.api_key, report)
        else:
            with report.check("API URL known"):
                expect(False, "no --api-url and no ApiUrl stack output")
    return report.summary()


if __name__ == "__main__":
    sys.exit(main())
