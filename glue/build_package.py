"""Build what the Glue jobs need: their entry scripts (training, scheduled live drift), an
``--extra-py-files`` archive of the project's code, and the ``--additional-python-modules`` list; both
jobs share the archive and the list.

The module list is the job's whole locked closure, less what Glue 5.0 already has: every package the
jobs need at run time (``[packages]`` + ``[glue]`` of the Pipfile, followed through each installed
package's declared requirements), pinned ``name==version`` from ``Pipfile.lock``, minus the modules
that ``glue/glue5_provided.txt`` says Glue 5.0 provides. The template installs it with pip's
``--no-deps``, so a job start resolves nothing: pip installs exactly this list.

    python glue/build_package.py [--out dist/glue]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fraud_detection", "spark_jobs")
ENTRY_SCRIPTS = ("train_job.py", "live_drift_job.py")
PROVIDED_FILE = Path(__file__).resolve().parent / "glue5_provided.txt"
# Pipfile sections whose packages the jobs import at run time ([api], [lambda], dev are other deployables').
JOB_SECTIONS = ("packages", "glue")
# Glue's own runtime: never shipped, never upgraded. Replacing them under a running Glue breaks its
# Spark (pyspark, py4j), its Arrow/pandas bridge (numpy, pandas, pyarrow) or its AWS client
# (boto3, botocore, urllib3). A requirement these versions do not meet fails the build instead.
NEVER_SHIP = frozenset({"pyspark", "py4j", "numpy", "pandas", "pyarrow", "boto3", "botocore", "urllib3"})
# Declared by mlflow-skinny, used only by what the jobs never run: fastapi, starlette and uvicorn serve
# models and the tracking server; databricks-sdk talks to Databricks workspaces (the jobs track to
# SQLite or an HTTP server). Left out with everything that only they pull in; the stand-in test
# (tests/glue_runtime/test_glue_standin.py) trains and logs a model to MLflow without them.
SERVING_ONLY = frozenset({"fastapi", "starlette", "uvicorn", "databricks-sdk"})


class ClosureError(RuntimeError):
    """The lock, the installed packages and Glue's own set do not add up to an installable list."""


class ModuleList(NamedTuple):  # not a dataclass: infra/deploy.py loads this file outside sys.modules
    modules: dict[str, str]  # canonical name -> locked version, shipped
    provided_used: dict[str, str]  # Glue's modules the shipped ones rely on -> Glue's version
    upgrades: dict[str, str]  # a Glue module shipped anyway -> why
    left_out: dict[str, str]  # reachable, not shipped -> why
    # shipped packages whose requirements were read from a different installed version (venv != lock);
    # the stand-in's `pip check` is what proves the shipped set consistent
    metadata_from: dict[str, str]

    def pins(self) -> list[str]:
        return [f"{name}=={version}" for name, version in sorted(self.modules.items())]


def glue_provided(path: Path = PROVIDED_FILE) -> dict[str, str]:
    """``glue5_provided.txt`` -> {canonical name: version}."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[canonicalize_name(name)] = version
    return out


def _locked(lock_path: Path) -> dict[str, str]:
    lock = json.loads(lock_path.read_text())
    out: dict[str, str] = {}
    for section in ("default", "glue"):
        for name, entry in lock.get(section, {}).items():
            out[canonicalize_name(name)] = entry["version"].removeprefix("==")
    return out


def _roots(pipfile: Path) -> list[Requirement]:
    data = tomllib.loads(pipfile.read_text())
    roots = []
    for section in JOB_SECTIONS:
        for name, spec in data.get(section, {}).items():
            extras = spec.get("extras", []) if isinstance(spec, dict) else []
            roots.append(Requirement(f"{name}[{','.join(extras)}]" if extras else name))
    return roots


def _requires(name: str, extras: frozenset[str]) -> list[Requirement]:
    """The installed distribution's requirements that apply on Glue 5.0 (Python 3.11, Linux) with ``extras``."""
    try:
        declared = metadata.requires(name) or []
    except metadata.PackageNotFoundError as e:
        raise ClosureError(f"{name} is not installed here: run `pipenv sync` to follow its requirements") from e
    out = []
    for text in declared:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *extras)):
            out.append(req)
    return out


def resolve(
    lock_path: Path = ROOT / "Pipfile.lock", pipfile: Path = ROOT / "Pipfile", provided_path: Path = PROVIDED_FILE
) -> ModuleList:
    """The job's locked closure minus Glue's own modules (see the module docstring)."""
    locked, provided = _locked(lock_path), glue_provided(provided_path)
    ship: dict[str, frozenset[str]] = {}  # name -> extras asked for
    needs: list[tuple[str, Requirement]] = []  # (who, requirement) on every package met
    left_out: dict[str, str] = {}
    todo: list[tuple[str, Requirement]] = [("Pipfile", r) for r in _roots(pipfile)]
    upgrades: dict[str, str] = {}
    metadata_from: dict[str, str] = {}
    while todo:
        who, req = todo.pop()
        name = canonicalize_name(req.name)
        needs.append((who, req))
        if name in SERVING_ONLY:
            left_out[name] = f"serving-only, declared by {who}"
            continue
        if name in provided and name not in upgrades:
            if not req.specifier.contains(provided[name], prereleases=True):
                if name in NEVER_SHIP:
                    raise ClosureError(f"{who} needs {req}, Glue 5.0 has {name}=={provided[name]} (never replaced)")
                upgrades[name] = f"{who} needs {req}; Glue 5.0 has {provided[name]}"
            else:
                continue
        extras = frozenset(req.extras) | ship.get(name, frozenset())
        if name in ship and extras == ship[name]:
            continue
        if name not in locked:
            raise ClosureError(f"{who} needs {req}, which Pipfile.lock (default + glue) does not pin")
        installed = metadata.version(name)
        if Version(installed) != Version(locked[name]):  # requirements read from another version: say so
            metadata_from[name] = installed
        ship[name] = extras
        todo.extend((name, child) for child in _requires(name, extras))
    # A package reached only through a serving-only one is not shipped either (it never got queued).
    for who, req in needs:  # every requirement of what is shipped must hold for what the job gets
        name = canonicalize_name(req.name)
        if name in SERVING_ONLY or (who != "Pipfile" and who not in ship):
            continue
        have = locked[name] if name in ship else provided.get(name)
        if have is None or not req.specifier.contains(have, prereleases=True):
            raise ClosureError(f"{who} needs {req}; the job would get {name} {have}")
    return ModuleList(
        modules={n: locked[n] for n in ship},
        provided_used={n: provided[n] for _, r in needs if (n := canonicalize_name(r.name)) in provided},
        upgrades=upgrades,
        left_out={n: why for n, why in left_out.items() if n not in ship},
        metadata_from=metadata_from,
    )


def additional_python_modules(lock_path: Path = ROOT / "Pipfile.lock") -> list[str]:
    return resolve(lock_path).pins()


def build(out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / "fraud_detection.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for pkg in PACKAGES:
            for path in sorted((ROOT / pkg).rglob("*.py")):
                zf.write(path, path.relative_to(ROOT).as_posix())
    scripts = {name: out_dir / name for name in ENTRY_SCRIPTS}
    for name, script in scripts.items():
        shutil.copyfile(ROOT / "glue" / name, script)
    modules = out_dir / "additional_python_modules.txt"
    modules.write_text(",".join(additional_python_modules()) + "\n")
    return {**scripts, "fraud_detection.zip": archive, "additional_python_modules.txt": modules}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "dist" / "glue")
    built = build(p.parse_args().out)
    for name, path in built.items():
        print(f"{name}: {path}")
    resolved = resolve()
    for name, why in sorted(resolved.upgrades.items()):
        print(f"upgrades Glue's {name}: {why}")
    for name, installed in sorted(resolved.metadata_from.items()):
        print(f"warning: {name} {installed} is installed, the lock pins {resolved.modules[name]} (run `pipenv sync`)")
    print(f"{len(resolved.modules)} modules shipped; left out: {', '.join(sorted(resolved.left_out))}")


if __name__ == "__main__":
    main()
