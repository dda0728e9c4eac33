"""Read a CloudFormation template and evaluate its intrinsic functions.

Used by the emulator provisioner (which creates each resource through the service APIs, because
moto's CloudFormation silently skips several resource types) and by the checks that need the
template's own expectations. Supports what ``infra/template.yaml`` uses: Ref, Fn::Sub, Fn::GetAtt,
Fn::If / Equals / Not / And / Or, Fn::Contains (Rules), Fn::Join, Fn::Select, Condition, DependsOn and AWS::NoValue.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "infra" / "template.yaml"


class TemplateError(ValueError):
    pass


class _Loader(yaml.SafeLoader):
    pass


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path | str = TEMPLATE_PATH) -> dict:
    return yaml.load(Path(path).read_text(), Loader=_Loader)  # noqa: S506 - SafeLoader subclass


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()
_SUB_VAR = re.compile(r"\$\{([^}!]+)\}")


def parameter_values(template: Mapping, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Template defaults overlaid with ``overrides``; a missing required parameter is an error."""
    out: dict[str, Any] = {}
    for name, spec in template.get("Parameters", {}).items():
        if name in overrides:
            value = overrides[name]
        elif "Default" in spec:
            value = spec["Default"]
        else:
            raise TemplateError(f"parameter {name} has no default and was not given")
        if spec.get("Type", "").startswith("List<") or spec.get("Type") == "CommaDelimitedList":
            value = value if isinstance(value, list) else [v for v in str(value).split(",") if v]
        else:
            value = str(value)
        out[name] = value
    unknown = set(overrides) - set(out)
    if unknown:
        raise TemplateError(f"unknown parameters: {sorted(unknown)}")
    return out


class Resolver:
    """Evaluates intrinsics against parameters, pseudo parameters and already-created resources."""

    def __init__(
        self,
        template: Mapping,
        parameters: Mapping[str, Any],
        *,
        account_id: str,
        region: str,
        stack_name: str,
        partition: str = "aws",
    ) -> None:
        self.template = template
        self.params = dict(parameters)
        self.pseudo = {
            "AWS::AccountId": account_id,
            "AWS::Region": region,
            "AWS::Partition": partition,
            "AWS::StackName": stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        self.refs: dict[str, Any] = {}  # logical id -> Ref value of created resources
        self.attrs: dict[str, dict[str, Any]] = {}  # logical id -> GetAtt attributes
        self._conditions: dict[str, bool] = {}

    # --- conditions -------------------------------------------------------------------------
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            try:
                expr = self.template["Conditions"][name]
            except KeyError as exc:
                raise TemplateError(f"unknown condition {name}") from exc
            self._conditions[name] = bool(self.resolve(expr))
        return self._conditions[name]

    def resource_enabled(self, logical_id: str) -> bool:
        cond = self.template["Resources"][logical_id].get("Condition")
        return True if cond is None else self.condition(cond)

    # --- values -----------------------------------------------------------------------------
    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        if name in self.refs:
            return self.refs[name]
        raise TemplateError(f"Ref {name}: not a parameter, pseudo parameter or created resource")

    def get_att(self, logical_id: str, attr: str) -> Any:
        try:
            return self.attrs[logical_id][attr]
        except KeyError as exc:
            raise TemplateError(f"GetAtt {logical_id}.{attr}: not available") from exc

    def _sub(self, text: str, extra: Mapping[str, Any]) -> str:
        def repl(m: re.Match) -> str:
            var = m.group(1).strip()
            if var in extra:
                value = extra[var]
            elif "." in var and var.split(".", 1)[0] in self.template.get("Resources", {}):
                value = self.get_att(*var.split(".", 1))
            else:
                value = self.ref(var)
            return str(value)

        return _SUB_VAR.sub(repl, text).replace("${!", "${")

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            items = [self.resolve(v) for v in node]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            fn: Callable[[Any], Any] | None = getattr(self, "_fn_" + key.replace("Fn::", "").replace("::", "_"), None)
            if key == "Ref" or key.startswith("Fn::") or key == "Condition":
                if fn is None:
                    raise TemplateError(f"intrinsic {key} is not supported")
                return fn(arg)
        out = {}
        for k, v in node.items():
            rv = self.resolve(v)
            if rv is not NO_VALUE:
                out[k] = rv
        return out

    def _fn_Ref(self, arg: str) -> Any:
        return self.ref(arg)

    def _fn_Condition(self, arg: str) -> bool:
        return self.condition(arg)

    def _fn_GetAtt(self, arg: list) -> Any:
        return self.get_att(arg[0], arg[1])

    def _fn_Sub(self, arg: Any) -> str:
        if isinstance(arg, str):
            return self._sub(arg, {})
        text, variables = arg
        return self._sub(text, {k: self.resolve(v) for k, v in variables.items()})

    def _fn_If(self, arg: list) -> Any:
        name, yes, no = arg
        return self.resolve(yes if self.condition(name) else no)

    def _fn_Equals(self, arg: list) -> bool:
        a, b = (self.resolve(v) for v in arg)
        return str(a) == str(b)

    def _fn_Not(self, arg: list) -> bool:
        return not self.resolve(arg[0])

    def _fn_And(self, arg: list) -> bool:
        return all(self.resolve(v) for v in arg)

    def _fn_Or(self, arg: list) -> bool:
        return any(self.resolve(v) for v in arg)

    def _fn_Contains(self, arg: list) -> bool:  # Rules only
        items, value = arg
        return str(self.resolve(value)) in [str(v) for v in self.resolve(items)]

    def _fn_Join(self, arg: list) -> str:
        sep, items = arg
        return sep.join(str(v) for v in self.resolve(items))

    def _fn_Select(self, arg: list) -> Any:
        index, items = arg
        return self.resolve(items)[int(self.resolve(index))]

    # --- rules ------------------------------------------------------------------------------
    def failed_rules(self) -> list[str]:
        """The template's ``Rules`` whose assertions fail for these parameters (their descriptions)."""
        failed = []
        for name, rule in self.template.get("Rules", {}).items():
            if "RuleCondition" in rule and not self.resolve(rule["RuleCondition"]):
                continue
            for assertion in rule.get("Assertions", []):
                if not self.resolve(assertion["Assert"]):
                    failed.append(f"{name}: {assertion.get('AssertDescription', 'assertion failed')}")
        return failed

    # --- outputs ----------------------------------------------------------------------------
    def outputs(self) -> dict[str, str]:
        out = {}
        for name, spec in self.template.get("Outputs", {}).items():
            if "Condition" in spec and not self.condition(spec["Condition"]):
                continue
            out[name] = str(self.resolve(spec["Value"]))
        return out


def dependencies(template: Mapping, logical_id: str) -> set[str]:
    """Resources that ``logical_id`` references (Ref, GetAtt, ${X} in Sub, DependsOn)."""
    resources = template["Resources"]
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, dict):
            for k, v in node.items():
                if k == "Ref" and isinstance(v, str) and v in resources:
                    found.add(v)
                elif k == "Fn::GetAtt":
                    found.add(v[0])
                elif k == "Fn::Sub":
                    text = v if isinstance(v, str) else v[0]
                    for var in _SUB_VAR.findall(text):
                        head = var.split(".", 1)[0]
                        if head in resources:
                            found.add(head)
                    walk(v if isinstance(v, str) else v[1])
                else:
                    walk(v)

    spec = resources[logical_id]
    walk(spec.get("Properties", {}))
    deps = spec.get("DependsOn", [])
    found.update([deps] if isinstance(deps, str) else deps)
    found.discard(logical_id)
    return found


def creation_order(template: Mapping, enabled: Callable[[str], bool]) -> list[str]:
    """Enabled resources, each after the ones it depends on (references to disabled ones are dropped)."""
    names = [n for n in template["Resources"] if enabled(n)]
    deps = {n: {d for d in dependencies(template, n) if d in names} for n in names}
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(names):
        ready = [n for n in names if n not in done and deps[n] <= done]
        if not ready:
            raise TemplateError(f"circular dependency among {sorted(set(names) - done)}")
        for n in ready:
            order.append(n)
            done.add(n)
    return order
