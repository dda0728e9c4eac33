"""IAM policy evaluation: identity policies of a role and resource policies (an SNS topic policy).

AWS evaluation logic for one account: a request is allowed iff some Allow statement matches and no
Deny does (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html).
A statement matches on Action / NotAction, Resource / NotResource, Principal (resource policies) and
every Condition operator block (keys ANDed, values of one key ORed). IAM wildcards: ``*`` and ``?``.
moto does not evaluate policies, so the tests and ``verify_iam_roles.py`` use this.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

# Actions AWS only grants on Resource "*".
UNSCOPABLE_ACTIONS = {"ecr:getauthorizationtoken", "cloudwatch:putmetricdata", "xray:puttracesegments"}


# ------------------------------------------------------------------------------ policy evaluation
def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, value: str, *, case_sensitive: bool) -> bool:
    if not case_sensitive:
        pattern, value = pattern.lower(), value.lower()
    # IAM wildcards: * and ? only ([ ] are literal)
    pattern = pattern.replace("[", "[[]")
    return fnmatch.fnmatchcase(value, pattern)


def _condition_matches(operator: str, key_values: dict, context: dict) -> bool:
    """One condition operator block: every key must match (AND); values of one key are ORed."""
    op = operator
    if_exists = op.endswith("IfExists")
    op = op.removesuffix("IfExists")
    qualifier = None
    if ":" in op:
        qualifier, op = op.split(":", 1)
    for key, wanted in key_values.items():
        wanted = [str(w) for w in _as_list(wanted)]
        present = key.lower() in {k.lower() for k in context}
        actual = next((v for k, v in context.items() if k.lower() == key.lower()), None)
        negated = op.startswith(("StringNot", "ArnNot", "NumericNotEquals")) or op == "Null"
        if op == "Null":
            if (str(wanted[0]).lower() == "true") != (not present):
                return False
            continue
        if not present:
            if if_exists or negated:
                continue
            return False
        actual_values = [str(v) for v in _as_list(actual)]

        def one(a: str, wanted: list[str] = wanted) -> bool:
            if op in ("StringEquals", "ArnEquals"):
                return a in wanted
            if op == "StringEqualsIgnoreCase":
                return a.lower() in (w.lower() for w in wanted)
            if op in ("StringLike", "ArnLike"):
                return any(_glob(w, a, case_sensitive=True) for w in wanted)
            if op in ("StringNotEquals", "ArnNotEquals"):
                return a not in wanted
            if op in ("StringNotLike", "ArnNotLike"):
                return not any(_glob(w, a, case_sensitive=True) for w in wanted)
            if op == "Bool":
                return a.lower() in (w.lower() for w in wanted)
            if op.startswith("Numeric"):
                x = float(a)
                cmp = {
                    "NumericEquals": lambda w: x == w,
                    "NumericNotEquals": lambda w: x != w,
                    "NumericLessThan": lambda w: x < w,
                    "NumericLessThanEquals": lambda w: x <= w,
                    "NumericGreaterThan": lambda w: x > w,
                    "NumericGreaterThanEquals": lambda w: x >= w,
                }[op]
                return any(cmp(float(w)) for w in wanted)
            raise ValueError(f"condition operator {operator} is not supported by this checker")

        if qualifier == "ForAllValues":
            ok = all(one(a) for a in actual_values)
        else:  # single-valued keys and ForAnyValue
            ok = any(one(a) for a in actual_values)
        if not ok:
            return False
    return True


def _principals(raw) -> list[str]:
    """``Principal`` as flat strings: ``{"Service": "events.amazonaws.com"}`` -> ["service:events.amazonaws.com"]."""
    if raw == "*":
        return ["*"]
    out = []
    for kind, values in raw.items():
        out += ["*" if v == "*" else f"{kind.lower()}:{v}" for v in _as_list(values)]
    return out


def service_principal(name: str) -> str:
    return f"service:{name}"


@dataclass
class Statement:
    effect: str
    actions: list[str] = field(default_factory=list)
    not_actions: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    not_resources: list[str] = field(default_factory=list)
    conditions: dict = field(default_factory=dict)
    source: str = ""
    principals: list[str] | None = None  # resource policies: "service:x" / "aws:arn" / "*"; None: identity policy

    @classmethod
    def parse(cls, raw: dict, source: str) -> Statement:
        return cls(
            effect=raw.get("Effect", "Allow"),
            actions=[str(a) for a in _as_list(raw.get("Action"))],
            not_actions=[str(a) for a in _as_list(raw.get("NotAction"))],
            resources=[str(r) for r in _as_list(raw.get("Resource"))],
            not_resources=[str(r) for r in _as_list(raw.get("NotResource"))],
            conditions=raw.get("Condition") or {},
            source=source,
            principals=_principals(raw["Principal"]) if "Principal" in raw else None,
        )

    def matches(self, action: str, resource: str, context: dict, principal: str | None = None) -> bool:
        if self.principals is not None and not (
            "*" in self.principals or (principal is not None and principal in self.principals)
        ):
            return False
        if self.actions:
            if not any(_glob(a, action, case_sensitive=False) for a in self.actions):
                return False
        elif self.not_actions:
            if any(_glob(a, action, case_sensitive=False) for a in self.not_actions):
                return False
        else:
            return False
        if self.resources:
            if not any(_glob(r, resource, case_sensitive=True) for r in self.resources):
                return False
        elif self.not_resources:
            if any(_glob(r, resource, case_sensitive=True) for r in self.not_resources):
                return False
        else:
            return False
        return all(_condition_matches(op, kv, context) for op, kv in self.conditions.items())


class PolicySet:
    """Identity policies of one principal, or one resource's policy (then pass ``principal`` to ``decide``):
    allowed iff some Allow matches and no Deny matches."""

    def __init__(self, documents: dict[str, dict]) -> None:
        self.statements: list[Statement] = []
        for name, doc in documents.items():
            for raw in _as_list(doc.get("Statement")):
                self.statements.append(Statement.parse(raw, name))

    def decide(
        self, action: str, resource: str, context: dict | None = None, principal: str | None = None
    ) -> tuple[bool, str]:
        context = context or {}
        allow = None
        for st in self.statements:
            if st.matches(action, resource, context, principal):
                if st.effect == "Deny":
                    return False, f"explicit deny in {st.source}"
                allow = allow or st.source
        return (True, f"allowed by {allow}") if allow else (False, "implicit deny")

    def allows(self, action: str, resource: str, context: dict | None = None, principal: str | None = None) -> bool:
        return self.decide(action, resource, context, principal)[0]

    def wildcard_actions(self) -> list[str]:
        bad = []
        for st in self.statements:
            if st.effect != "Allow":
                continue
            bad += [f"{st.source}: Action {a}" for a in st.actions if "*" in a or "?" in a]
            bad += [f"{st.source}: NotAction {a} (Allow+NotAction grants everything else)" for a in st.not_actions]
        return bad

    def unscoped_resources(self) -> list[str]:
        bad = []
        for st in self.statements:
            if st.effect != "Allow":
                continue
            if "*" in st.resources or st.not_resources:
                too_broad = [a for a in st.actions if a.lower() not in UNSCOPABLE_ACTIONS]
                too_broad += [f"NotAction {a}" for a in st.not_actions]
                if too_broad or st.not_resources:
                    bad.append(f"{st.source}: Resource '*' for {too_broad or st.not_resources}")
        return bad
