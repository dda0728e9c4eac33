"""What a Lambda deployment package (the zip) holds, judged without running it.

Used by ``verify_lambda_function.py`` on the code the deployed function runs:

* ``vendored_problems``: each dependency the deploy vendors is there as an installed distribution
  (``<name>-<version>.dist-info``) at the locked version, every file its ``RECORD`` lists is in the zip
  with that hash, and its wheel tags load on the function's runtime (CPython 3.11 on Amazon Linux 2,
  glibc 2.26, the function's architecture);
* ``import_closure_problems``: starting at the handler's module, every module imported at import time
  (module level, not inside functions, not under ``TYPE_CHECKING``) is in the standard library, provided
  by the runtime (boto3 and what it needs), or in the zip; the project's own modules are followed.

Facts about the runtime (cite when changing them):
python3.11 runs on Amazon Linux 2 — https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html
Amazon Linux 2 ships glibc 2.26 — https://repost.aws/questions/QUrXOioL46RcCnFGyELJWKLw/glibc-2-27-on-amazon-linux-2
The Python runtimes include the AWS SDK (boto3 / botocore) —
https://docs.aws.amazon.com/lambda/latest/dg/lambda-python.html
"""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import re
import sys
import zipfile
from dataclasses import dataclass

RUNTIME_PYTHON = (3, 11)
RUNTIME_GLIBC = (2, 26)
# boto3 and the packages it needs are in the runtime, so the zip may import them without carrying them.
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"})
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_ARCH = {"x86_64": "x86_64", "arm64": "aarch64"}


def b64_sha256(data: bytes) -> str:
    """Lambda's ``CodeSha256``: the base64 (standard alphabet) of the package's SHA-256."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


@dataclass
class Package:
    """The zip's members and their bytes."""

    files: dict[str, bytes]

    @classmethod
    def from_bytes(cls, data: bytes) -> Package:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return cls({n: zf.read(n) for n in zf.namelist() if not n.endswith("/")})

    def dist_info(self, distribution: str) -> str | None:
        """The ``<name>-<version>.dist-info`` folder of a distribution, or None."""
        want = normalize(distribution)
        for folder in sorted({n.split("/", 1)[0] for n in self.files if n.split("/", 1)[0].endswith(".dist-info")}):
            name = folder.removesuffix(".dist-info").rsplit("-", 1)[0]
            if normalize(name) == want:
                return folder
        return None

    def module_file(self, dotted: str) -> str | None:
        """The member a module is loaded from (package ``__init__``, ``.py``, or an extension), or None."""
        base = dotted.replace(".", "/")
        for candidate in (f"{base}/__init__.py", f"{base}.py"):
            if candidate in self.files:
                return candidate
        prefix = f"{base}."
        for name in self.files:
            if name.startswith(prefix) and name.endswith(".so") and "/" not in name[len(prefix) :]:
                return name
        return None


# ----------------------------------------------------------------------------- vendored distributions
def _glibc_of(platform: str, arch: str) -> tuple[int, int] | None:
    """The glibc a manylinux platform tag needs, or None when the tag is not manylinux for ``arch``."""
    if not platform.endswith("_" + arch):
        return None
    stem = platform[: -len(arch) - 1]
    if stem in _LEGACY_MANYLINUX:
        return _LEGACY_MANYLINUX[stem]
    m = re.fullmatch(r"manylinux_(\d+)_(\d+)", stem)
    return (int(m.group(1)), int(m.group(2))) if m else None


def tag_loads(tag: str, architecture: str) -> bool:
    """A wheel tag ``python-abi-platform`` that CPython 3.11 on Amazon Linux 2 (``architecture``) loads."""
    try:
        python, abi, platform = tag.split("-")
    except ValueError:
        return False
    major, minor = RUNTIME_PYTHON
    pythons = {f"py{major}", f"py{major}{minor}", f"cp{major}{minor}"}
    python_ok = any(p in pythons for p in python.split(".")) or (
        abi == "abi3" and any(re.fullmatch(rf"cp{major}(\d+)", p) and int(p[3:]) <= minor for p in python.split("."))
    )
    abi_ok = abi in ("none", "abi3", f"cp{major}{minor}")
    arch = _ARCH.get(architecture, architecture)
    platform_ok = any(
        p == "any" or ((glibc := _glibc_of(p, arch)) is not None and glibc <= RUNTIME_GLIBC)
        for p in platform.split(".")
    )
    return python_ok and abi_ok and platform_ok


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def vendored_problems(pkg: Package, locked: dict[str, str], architecture: str) -> list[str]:
    """``locked``: distribution -> version the deploy pins. Every problem found, as a sentence."""
    problems = []
    for dist, version in locked.items():
        folder = pkg.dist_info(dist)
        if folder is None:
            problems.append(f"{dist} is not in the package (no {normalize(dist)}-*.dist-info)")
            continue
        found = folder.removesuffix(".dist-info").rsplit("-", 1)[1]
        if found != version:
            problems.append(f"{dist} is {found}, the lock pins {version}")
        record = pkg.files.get(f"{folder}/RECORD", b"").decode(errors="replace").splitlines()
        if not record:
            problems.append(f"{dist}: {folder}/RECORD is missing")
        for line in record:
            path, _, rest = line.partition(",")
            digest = rest.split(",", 1)[0]
            if not path or path.startswith("../") or "__pycache__" in path or not digest:
                continue  # console scripts outside the tree, bytecode, RECORD itself (no hash)
            data = pkg.files.get(path)
            if data is None:
                problems.append(f"{dist}: {path} (listed in its RECORD) is not in the package")
            elif _record_hash(data) != digest:
                problems.append(f"{dist}: {path} differs from its RECORD hash")
        wheel = pkg.files.get(f"{folder}/WHEEL", b"").decode(errors="replace")
        tags = [ln.split(":", 1)[1].strip() for ln in wheel.splitlines() if ln.startswith("Tag:")]
        if not any(tag_loads(t, architecture) for t in tags):
            problems.append(
                f"{dist}: built for {tags or 'unknown tags'}, which CPython {RUNTIME_PYTHON[0]}.{RUNTIME_PYTHON[1]} "
                f"on Amazon Linux 2 (glibc {RUNTIME_GLIBC[0]}.{RUNTIME_GLIBC[1]}, {architecture}) cannot load"
            )
    return problems


# ----------------------------------------------------------------------------- import closure
def _import_time_nodes(body: list[ast.stmt]):
    """Statements executed when the module is imported: not function bodies, not ``if TYPE_CHECKING``."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _import_time_nodes(node.orelse)
            continue
        if isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers):
            # ``try: import x`` / ``except ImportError``: x is optional; what the handler does instead counts
            for h in node.handlers:
                yield from _import_time_nodes(h.body)
            yield from _import_time_nodes(node.orelse + node.finalbody)
            continue
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(node, field, None)
            if isinstance(inner, list):
                yield from _import_time_nodes([n for n in inner if isinstance(n, ast.stmt | ast.excepthandler)])


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    names = {ast.unparse(t) for t in (handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type])}
    return bool(names & {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


def _imports(source: bytes, module: str, is_package: bool) -> list[str]:
    """Dotted names a module imports at import time (``from a import b`` gives ``a`` and ``a.b``)."""
    tree = ast.parse(source)
    out: list[str] = []
    for node in _import_time_nodes(tree.body):
        if isinstance(node, ast.ExceptHandler):
            continue
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                anchor = parts if is_package else parts[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "__future__":
                continue
            out.append(base)
            out += [f"{base}.{a.name}" for a in node.names if a.name != "*"]
    return out


def import_closure_problems(pkg: Package, handler_module: str, own_packages: tuple[str, ...]) -> list[str]:
    """Modules the handler needs at import time that neither the runtime nor the package provides."""
    stdlib = set(sys.stdlib_module_names)
    problems: list[str] = []
    missing: set[str] = set()
    seen: set[str] = set()
    todo = [handler_module]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        top = module.split(".", 1)[0]
        if top in stdlib or top in RUNTIME_PROVIDED:
            continue
        path = pkg.module_file(module)
        if path is None:
            parent = module.rsplit(".", 1)[0]
            if "." in module and pkg.module_file(parent) is not None:
                continue  # ``from pkg import name``: a name defined in pkg, not a submodule
            missing.add(module)
            continue
        if "." in module:
            todo.append(module.rsplit(".", 1)[0])  # importing a.b runs a/__init__.py first
        if top in own_packages and path.endswith(".py"):
            try:
                todo += _imports(pkg.files[path], module, path.endswith("__init__.py"))
            except SyntaxError as exc:
                problems.append(f"{path} does not parse: {exc}")
    # name the shallowest missing module once (``pydantic``, not also ``pydantic.BaseModel``)
    shallow = sorted(m for m in missing if not any(m.startswith(o + ".") for o in missing))
    return [f"{m} (imported when the handler loads) is not in the package" for m in shallow] + problems
