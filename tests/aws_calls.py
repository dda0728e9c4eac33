"""Every AWS call a component makes in the test suite, checked against that component's IAM role.

A botocore ``before-parameter-build`` hook, registered on every client any botocore session creates,
records each call (service, operation, parameters) with the innermost frame of project code that made
it; ``after-call`` adds the answer (ok / error code). A call made from test code (fixtures creating the
emulated account, assertions reading it back) or from the deploy / dev tooling (``infra/``, ``tools/``,
``bench/``) is not a component's and is not recorded. The component is the test package's
(``aws_calls.yaml`` ``test_packages``) or the one a module / test names with
``@pytest.mark.aws_component("...")``.

The calls of a test's setup and body are evaluated right after its body (``aws_calls_plugin.py``): names are bound
to the template's resources, the call must match an entry of the component's ``inventory``, it becomes
the IAM permissions it needs (``iam_calls.py``), and the component's role policies in
``infra/template.yaml`` decide. A denied call fails that test, naming component, call, action,
resource and role; so does an unlisted call, and a component call in a test that names no component.
Calls made in fixture teardowns are evaluated at the end of the session, which then fails. Calls of
subprocesses (the live API server, the Lambda zip in its own virtualenv) are not seen here.
"""

from __future__ import annotations

import fnmatch
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from iam_calls import MISSING_KEY_CODES, Call, Verdict, data, evaluate
from template_stack import TemplateStack

ROOT = Path(__file__).resolve().parent.parent
_NOT_PROJECT = ("tests/", "infra/", "tools/", "bench/")  # test code and the deploy / dev tooling
_LIBRARIES = (".venv/",)
_ROOT_PREFIX = str(ROOT) + "/"


@dataclass
class Recorded:
    component: str | None
    service: str
    operation: str
    params: dict
    stack: tuple[str, ...]  # project frames (path:function), innermost first
    outcome: str = "ok"
    stubbed: bool = False  # answered by botocore's Stubber: no request left the process

    @property
    def unassigned(self) -> bool:
        return self.component is None

    @property
    def caller(self) -> str:
        return self.stack[0] if self.stack else "(no project frame)"

    @property
    def call(self) -> Call:
        return Call(self.component or "?", self.service, self.operation, self.params, self.outcome, self.caller,
                    self.stack)  # fmt: skip


class Recorder:
    """Collects calls; ``component`` is set per test by ``Plugin`` (threads the test starts see it too)."""

    def __init__(self) -> None:
        self.calls: list[Recorded] = []
        self.checked = 0  # calls before this index were evaluated already
        self.component: str | None = None
        self._lock = threading.Lock()
        self.installed = False

    # --- botocore hooks ------------------------------------------------------------------------
    def _before(self, params: dict, model, context: dict, **_: Any) -> None:
        stack = _project_stack()
        if stack is None or (stack and stack[0] in data()["setup_helpers"]):
            return
        rec = Recorded(self.component, model.service_model.service_name, model.name, dict(params), stack)
        context["aws_calls_record"] = rec
        with self._lock:
            self.calls.append(rec)

    def _after(self, http_response, parsed: dict, context: dict, **_: Any) -> None:
        rec = context.get("aws_calls_record") if context else None
        if rec is None:
            return
        rec.stubbed = getattr(http_response, "url", "") is None  # Stubber answers with AWSResponse(None, ...)
        if isinstance(parsed, dict) and "Error" in parsed:
            rec.outcome = str(parsed["Error"].get("Code", "error"))

    def install(self) -> None:
        """Wrap ``botocore.session.Session.create_client`` so every new client carries the two hooks."""
        if self.installed:
            return
        import botocore.session

        original = botocore.session.Session.create_client
        recorder = self

        def create_client(session, *args, **kwargs):
            client = original(session, *args, **kwargs)
            client.meta.events.register_first("before-parameter-build.*.*", recorder._before)
            client.meta.events.register("after-call.*.*", recorder._after)
            return client

        create_client.__wrapped__ = original  # type: ignore[attr-defined]
        botocore.session.Session.create_client = create_client
        self.installed = True

    def since(self, index: int) -> list[Recorded]:
        with self._lock:
            return list(self.calls[index:])


RECORDER = Recorder()


def _project_stack() -> tuple[str, ...] | None:
    """The project's frames (``path:function``) that led to the call, innermost first; None when the
    innermost one is test code or tooling. Empty for a call with no project frame at all (s3transfer's
    worker threads): that counts as the component's."""
    frames: list[str] = []
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        rel = filename[len(_ROOT_PREFIX) :] if filename.startswith(_ROOT_PREFIX) else None
        if rel is not None and not rel.startswith(_LIBRARIES):
            if rel.startswith(_NOT_PROJECT):
                return None if not frames else tuple(frames)
            frames.append(f"{rel}:{frame.f_code.co_name}")
        frame = frame.f_back
    return tuple(frames)


@contextmanager
def component(name: str | None) -> Iterator[None]:
    previous, RECORDER.component = RECORDER.component, name
    try:
        yield
    finally:
        RECORDER.component = previous


# ------------------------------------------------------------------------------ binding and evaluation
@cache
def stack() -> TemplateStack:
    return TemplateStack.load()


def component_role(st: TemplateStack, name: str) -> str:
    """Logical id of the role the component runs as: read from the template resource that runs it."""
    cache = st.__dict__.setdefault("_component_roles", {})
    if name not in cache:
        spec = data()["components"][name]
        arn = st.props(spec["resource"])[spec["role_property"]]
        roles = [lid for lid in st.resources_of_type("AWS::IAM::Role") if st.resolver.attrs[lid]["Arn"] == arn]
        if not roles:
            raise KeyError(f"{name}: role {arn} is not a role of the template")
        cache[name] = roles[0]
    return cache[name]


def bind(call: Call, st: TemplateStack) -> Call:
    """The call with its names replaced by the template's: the bucket, and tables / jobs / secrets by caller."""
    p = dict(call.params)
    if call.service == "s3":
        if "Bucket" in p:
            p["Bucket"] = st.bucket
        src = p.get("CopySource")
        if isinstance(src, dict):
            p["CopySource"] = {**src, "Bucket": st.bucket}
        return Call(call.component, call.service, call.operation, p, call.outcome, call.caller, call.stack)
    rules = data()["bindings"].get(call.service)
    if rules is None:
        return call
    logical = _logical(call)
    if logical is None:
        raise KeyError(f"{call.label()} from {call.caller}: no module on its stack has a binding in aws_calls.yaml")
    name = st.ref(logical)
    if call.service == "dynamodb":
        if "RequestItems" in p:
            p["RequestItems"] = {name: [r for reqs in p["RequestItems"].values() for r in reqs]}
        else:
            p["TableName"] = name
    elif call.service == "glue" and "JobName" in p:
        p["JobName"] = name
    elif call.service == "secretsmanager":
        p["SecretId"] = name
    return Call(call.component, call.service, call.operation, p, call.outcome, call.caller, call.stack)


def _logical(call: Call) -> str | None:
    rules = data()["bindings"].get(call.service, {})
    modules = [frame.split(":", 1)[0] for frame in (call.stack or (call.caller,))]
    return next((rules[m] for m in modules if m in rules), None)


def inventory_key(call: Call) -> tuple[str, str, str]:
    """(component, service.Operation, resource) of a recorded call, as ``aws_calls.yaml`` ``inventory``
    names it: the S3 key (the prefix of a listing), the template resource a table / job / secret stands
    for, the CloudWatch namespace."""
    p, what = call.params, f"{call.service}.{call.operation}"
    if call.service == "s3":
        if call.operation == "CopyObject":
            src = p["CopySource"]
            src_key = src["Key"] if isinstance(src, dict) else src.split("/", 2)[-1]
            resource = f"{src_key} -> {p['Key']}"
        else:
            resource = p.get("Key", p.get("Prefix", ""))
    elif call.service in data()["bindings"]:
        resource = _logical(call) or "?"
    elif call.service == "cloudwatch":
        resource = p.get("Namespace", "")
    else:
        resource = ""
    return call.component, what, resource


def _versioned(call: Call) -> bool:
    src = call.params.get("CopySource")
    return bool(call.params.get("VersionId") or (isinstance(src, dict) and src.get("VersionId")))


def _missing(call: Call) -> str | None:
    if call.outcome not in MISSING_KEY_CODES:
        return None
    return "listed" if call.caller in data()["handles_403"] else "404"


def inventory_entry(call: Call) -> dict | None:
    """The ``aws_calls.yaml`` ``inventory`` entry a recorded call falls under, if any."""
    component, what, resource = inventory_key(call)
    for entry in data()["inventory"].get(component, []):
        if entry["call"] != what or not fnmatch.fnmatchcase(resource, entry["resource"]):
            continue
        if _versioned(call) and not entry.get("versioned"):
            continue
        missing = _missing(call)
        if missing is not None and entry.get("missing") != missing:
            continue
        return entry
    return None


def inventory_calls(st: TemplateStack) -> list[Call]:
    """Each inventory entry as calls in ``st``'s names: a key glob's ``*`` becomes ``example``; a versioned
    entry is called with and without a version id; a missing-object entry as answered 404."""
    out = []
    for component, entries in data()["inventory"].items():
        for entry in entries:
            service, operation = entry["call"].split(".", 1)
            resource = entry["resource"].replace("*", "example")
            if service == "s3":
                bucket = st.bucket
                if operation == "CopyObject":
                    src, dst = resource.split(" -> ")
                    variants = [{"Bucket": bucket, "Key": dst, "CopySource": {"Bucket": bucket, "Key": src}}]
                    if entry.get("versioned"):
                        variants.append(
                            {**variants[0], "CopySource": {"Bucket": bucket, "Key": src, "VersionId": "v1"}}
                        )
                elif operation.startswith("List"):
                    variants = [{"Bucket": bucket, "Prefix": resource}]
                else:
                    variants = [{"Bucket": bucket, "Key": resource}]
                    if entry.get("versioned"):
                        variants.append({"Bucket": bucket, "Key": resource, "VersionId": "v1"})
            elif service == "dynamodb":
                variants = [{"TableName": st.ref(entry["resource"])}]
            elif service == "glue":
                variants = [{"JobName": st.ref(entry["resource"])}]
            elif service == "secretsmanager":
                variants = [{"SecretId": st.ref(entry["resource"])}]
            elif service == "cloudwatch":
                variants = [{"Namespace": entry["resource"]}]
            else:
                variants = [{}]
            missing = entry.get("missing")
            caller = data()["handles_403"][0] if missing == "listed" else "inventory"
            outcome = "404" if missing else "ok"
            out += [Call(component, service, operation, v, outcome, caller) for v in variants]
    return out


def check_calls(calls: Iterable[Call], st: TemplateStack | None = None, *, bound: bool = False) -> list[Verdict]:
    """The verdict on each call by its component's role in ``st``; ``bound``: the calls use the template's
    names already (listed calls), else they are bound first."""
    st = st or stack()
    region, account = st.resolver.pseudo["AWS::Region"], st.resolver.pseudo["AWS::AccountId"]
    out = []
    for call in calls:
        role = component_role(st, call.component)
        call = call if bound else bind(call, st)
        out.append(evaluate(call, role, st.role_policies(role), region=region, account=account))
    return out


def listed_calls(st: TemplateStack | None = None) -> list[Call]:
    """The calls of ``aws_calls.yaml`` ``listed_calls`` plus those the AWS runtimes make with each role,
    read from the resources that run the components (script and code archive of each Glue job, log
    groups, the Lambda's on-failure destination, the API image and its injected secrets)."""
    st = st or stack()
    out = []
    for comp, entries in data()["listed_calls"].items():
        for e in entries:
            params = {k: (st.bucket if v == "DataBucket" else v) for k, v in e["params"].items()}
            out.append(Call(comp, e["service"], e["operation"], params, str(e.get("outcome", "ok")), e["source"]))
    return out + runtime_calls(st)


def _s3_key(uri: str, st: TemplateStack) -> dict:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return {"Bucket": bucket, "Key": key}


def _log_calls(comp: str, group: str, stream: str, source: str) -> list[Call]:
    params = {"logGroupName": group, "logStreamName": stream}
    return [Call(comp, "logs", op, params, caller=source) for op in ("CreateLogStream", "PutLogEvents")]


def runtime_calls(st: TemplateStack) -> list[Call]:
    calls = []
    for comp, spec in data()["components"].items():
        res = st.template["Resources"][spec["resource"]]
        p = st.props(spec["resource"])
        if res["Type"] == "AWS::Glue::Job":
            src = f"Glue runtime ({spec['resource']})"
            calls.append(Call(comp, "s3", "GetObject", _s3_key(p["Command"]["ScriptLocation"], st), caller=src))
            for uri in p["DefaultArguments"].get("--extra-py-files", "").split(","):
                if uri:
                    calls.append(Call(comp, "s3", "GetObject", _s3_key(uri, st), caller=src))
            for group in ("/aws-glue/jobs/output", "/aws-glue/jobs/error", "/aws-glue/jobs/logs-v2"):
                calls += _log_calls(comp, group, "jr_1", src)
        elif res["Type"] == "AWS::Lambda::Function":
            src = f"Lambda runtime ({spec['resource']})"
            group = p["LoggingConfig"]["LogGroup"]
            calls += _log_calls(comp, group, "2024/01/01/x", src)
            for lid in st.resources_of_type("AWS::Lambda::EventInvokeConfig"):
                dest = st.props(lid).get("DestinationConfig", {}).get("OnFailure", {}).get("Destination", "")
                if dest.startswith("arn:aws:sqs:"):
                    calls.append(Call(comp, "sqs", "SendMessage", {"QueueName": dest.rsplit(":", 1)[1]}, caller=src))
        elif res["Type"] == "AWS::ECS::TaskDefinition" and comp == "api_agent":
            src = f"ECS agent ({spec['resource']})"
            for c in p["ContainerDefinitions"]:
                repo = c["Image"].split("/", 1)[1].split(":", 1)[0]
                calls.append(Call(comp, "ecr", "GetAuthorizationToken", {}, caller=src))
                for op in ("BatchGetImage", "GetDownloadUrlForLayer", "BatchCheckLayerAvailability"):
                    calls.append(Call(comp, "ecr", op, {"repositoryName": repo}, caller=src))
                group = c["LogConfiguration"]["Options"]["awslogs-group"]
                calls += _log_calls(comp, group, "api/api/x", src)
                for secret in c.get("Secrets", []):
                    params = {"SecretId": secret["ValueFrom"]}
                    calls.append(Call(comp, "secretsmanager", "GetSecretValue", params, caller=src))
    return calls


# ------------------------------------------------------------------------------ pytest integration
def item_component(item) -> str | None:
    marker = item.get_closest_marker("aws_component")
    if marker is not None:
        return marker.args[0] if marker.args else None
    rel = Path(str(item.fspath)).resolve().relative_to(ROOT).as_posix()
    for prefix, name in data()["test_packages"].items():
        if rel.startswith(prefix):
            return name
    return None


def failures(records: list[Recorded]) -> list[str]:
    records = [r for r in records if not r.stubbed]
    messages = []
    for label in dict.fromkeys(f"{r.call.label()} from {r.caller}" for r in records if r.unassigned):
        messages.append(f"{label}: the test names no component; "
                        "mark it @pytest.mark.aws_component(<name>) (tests/aws_calls.yaml components)")  # fmt: skip
    assigned = [r.call for r in records if not r.unassigned]
    st = stack()
    for call in assigned:
        if inventory_entry(bind(call, st)) is None:
            comp, what, resource = inventory_key(bind(call, st))
            missing = _missing(call)
            messages.append(
                f"{comp} made {what} on {resource!r}{' (answered ' + call.outcome + ')' if missing else ''} "
                f"[{call.caller}], which tests/aws_calls.yaml inventory does not list: add it there "
                "(verify_iam_roles.py checks every entry on a deployment)"
            )
    for verdict in check_calls(assigned):
        if not verdict.allowed:
            messages.append(verdict.message())
    return list(dict.fromkeys(messages))  # one line per distinct denial


def pairs(records: Iterable[Recorded]) -> set[tuple[str, str]]:
    """(component, IAM action) pairs of the recorded calls: what the terminal summary lists."""
    from iam_calls import permissions

    st = stack()
    out = set()
    for rec in records:
        if rec.unassigned:
            continue
        call = bind(rec.call, st)
        for perm in permissions(call, region=st.resolver.pseudo["AWS::Region"],
                                account=st.resolver.pseudo["AWS::AccountId"]):  # fmt: skip
            out.add((call.component, perm.action))
    return out
