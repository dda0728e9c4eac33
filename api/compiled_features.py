"""``features.FEATURES`` compiled into one straight-line Python function for the per-transaction path.

The feature expressions are evaluated once, at import, with a tracing ops object: every primitive,
history aggregate, arithmetic operation and comparison becomes one line of generated code, and a
sub-expression that several features share (the 30-day mean and spread, each history aggregate) is
computed once. The generated function does exactly what ``features.RowOps`` does, operation for
operation, on the same floats: the same ``math`` functions, ``max`` for ``greatest``,
``a / b if b != 0 else default`` for ``div``, eager arguments for ``where``; so its values are bit for bit
the row engine's (``tests/api/test_api_features.py``). What it saves is the interpretation: 30 lambdas,
~150 method calls and repeated sub-expressions per transaction.

A feature the tracer cannot follow (for example one that branches with a Python ``if`` on a value) makes
``compile_features`` return None, and the caller keeps evaluating the expressions one by one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from fraud_detection import features

CompiledFeatures = Callable[[dict[str, float], Callable[..., float]], list[float]]


class _Expr:
    """A traced value: the name of the generated variable that holds it."""

    __slots__ = ("name", "_t")

    def __init__(self, name: str, tracer: _Tracer) -> None:
        self.name = name
        self._t = tracer

    def __bool__(self) -> bool:
        raise TypeError("a traced feature value cannot decide a Python branch")

    def _op(self, op: str, other: Any, reflected: bool = False) -> _Expr:
        a, b = (_src(other), self.name) if reflected else (self.name, _src(other))
        return self._t.emit(f"{a} {op} {b}")

    def __add__(self, o: Any) -> _Expr:
        return self._op("+", o)

    def __radd__(self, o: Any) -> _Expr:
        return self._op("+", o, True)

    def __sub__(self, o: Any) -> _Expr:
        return self._op("-", o)

    def __rsub__(self, o: Any) -> _Expr:
        return self._op("-", o, True)

    def __mul__(self, o: Any) -> _Expr:
        return self._op("*", o)

    def __rmul__(self, o: Any) -> _Expr:
        return self._op("*", o, True)

    def __truediv__(self, o: Any) -> _Expr:
        return self._op("/", o)

    def __rtruediv__(self, o: Any) -> _Expr:
        return self._op("/", o, True)

    def __pow__(self, o: Any) -> _Expr:
        return self._op("**", o)

    def __rpow__(self, o: Any) -> _Expr:
        return self._op("**", o, True)

    def __neg__(self) -> _Expr:
        return self._t.emit(f"-{self.name}")

    def __gt__(self, o: Any) -> _Expr:
        return self._op(">", o)

    def __ge__(self, o: Any) -> _Expr:
        return self._op(">=", o)

    def __lt__(self, o: Any) -> _Expr:
        return self._op("<", o)

    def __le__(self, o: Any) -> _Expr:
        return self._op("<=", o)

    def __eq__(self, o: Any) -> _Expr:  # type: ignore[override]
        return self._op("==", o)

    def __ne__(self, o: Any) -> _Expr:  # type: ignore[override]
        return self._op("!=", o)

    __hash__ = None  # type: ignore[assignment]


def _src(value: Any) -> str:
    if isinstance(value, _Expr):
        return value.name
    if isinstance(value, bool | int | float) and math.isfinite(value):
        return f"({value!r})" if value < 0 else repr(value)  # parenthesised: -1.0 ** x is -(1.0 ** x)
    raise TypeError(f"cannot compile the constant {value!r}")


class _Tracer:
    """The ops interface of ``features.RowOps``, recording generated code instead of computing."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._memo: dict[str, _Expr] = {}

    def emit(self, code: str) -> _Expr:
        found = self._memo.get(code)
        if found is None:
            found = self._memo[code] = _Expr(f"t{len(self.lines)}", self)
            self.lines.append(f"    {found.name} = {code}")
        return found

    def col(self, name: str) -> _Expr:
        return self.emit(f"V[{name!r}]")

    def hist(self, what: str, window: str, same_category: bool = False) -> _Expr:
        # the window in seconds, resolved now; each distinct aggregate is computed once (see emit)
        return self.emit(f"H({what!r}, {features.WINDOWS[window]!r}, {same_category!r})")

    def where(self, cond: Any, a: Any, b: Any) -> _Expr:
        return self.emit(f"{_src(a)} if {_src(cond)} else {_src(b)}")

    def div(self, a: Any, b: Any, default: float) -> _Expr:
        return self.emit(f"{_src(a)} / {_src(b)} if {_src(b)} != 0 else {_src(default)}")

    def greatest(self, a: Any, b: Any) -> _Expr:
        return self.emit(f"max({_src(a)}, {_src(b)})")

    def _math(self, fn: str, a: Any) -> _Expr:
        return self.emit(f"_math.{fn}({_src(a)})")

    def sin(self, a: Any) -> _Expr:
        return self._math("sin", a)

    def cos(self, a: Any) -> _Expr:
        return self._math("cos", a)

    def asin(self, a: Any) -> _Expr:
        return self._math("asin", a)

    def sqrt(self, a: Any) -> _Expr:
        return self._math("sqrt", a)

    def radians(self, a: Any) -> _Expr:
        return self._math("radians", a)


def generated_source(feature_list: Sequence[features.Feature] = features.FEATURES) -> str:
    """The Python source of the compiled function ``_features(V, H)`` (raises TypeError if untraceable)."""
    tracer = _Tracer()
    outputs = [_src(f.fn(tracer)) for f in feature_list]
    body = "\n".join(tracer.lines)
    return f"def _features(V, H):\n{body}\n    return [{', '.join(f'float({o})' for o in outputs)}]\n"


def compile_features(feature_list: Sequence[features.Feature] = features.FEATURES) -> CompiledFeatures | None:
    """``_features(V, H)``: V the transaction's primitives (``RowOps._v``), H the history aggregate
    ``H(what, window_seconds, same_category)`` (``FastRowOps._hist``); None when a feature cannot be
    traced."""
    try:
        source = generated_source(feature_list)
    except TypeError:
        return None
    namespace: dict[str, Any] = {"_math": math}
    exec(compile(source, "<features.FEATURES compiled>", "exec"), namespace)  # noqa: S102 - our own expressions
    return namespace["_features"]
