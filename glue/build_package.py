"""Build what the Glue jobs need: their entry scripts (training, scheduled live drift), an
``--extra-py-files`` archive of the project's code, and the ``--additional-python-modules`` list (exact
versions from Pipfile.lock that Glue 5.0 lacks); both jobs share the archive and the list.

    python glue/build_package.py [--out dist/glue]
"""

from __future__ import annotations

import argparse
import json
import shutil
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fraud_detection", "spark_jobs")
ENTRY_SCRIPTS = ("train_job.py", "live_drift_job.py")
# Provided by the Glue 5.0 runtime (Spark 3.5.4, Python 3.11): never shipped again.
GLUE_PROVIDED = {"pyspark", "py4j", "boto3", "botocore", "s3transfer", "numpy", "pandas", "pyarrow", "scipy"}
# What the job imports that the runtime does not have (and their pinned versions from the lock).
JOB_MODULES = (
    "scikit-learn",
    "joblib",
    "great-expectations",
    "pydantic",
    "pydantic-settings",
    "matplotlib",
    "mlflow-skinny",
    "sqlalchemy",
    "alembic",
    "skops",
)


def additional_python_modules(lock_path: Path = ROOT / "Pipfile.lock") -> list[str]:
    lock = json.loads(lock_path.read_text())
    pinned = {**lock.get("default", {}), **lock.get("glue", {})}
    out = []
    for name in JOB_MODULES:
        entry = pinned.get(name)
        if entry is None:
            raise KeyError(f"{name} is not in Pipfile.lock (default or glue category)")
        out.append(f"{name}{entry['version']}")
    return out


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


if __name__ == "__main__":
    main()
