"""Write pip requirements (exact versions + sha256 hashes) for chosen Pipfile.lock categories.

Used by ``api/Dockerfile`` so the image installs exactly the locked ``default`` + ``api`` packages
(no pipenv in the image, nothing from the glue / dev categories, hence no pyspark):

    python lock_to_requirements.py Pipfile.lock default api > requirements.txt
"""

from __future__ import annotations

import json
import sys


def requirements(lock: dict, categories: list[str]) -> list[str]:
    merged: dict[str, dict] = {}
    for category in categories:
        if category not in lock:
            raise SystemExit(f"Pipfile.lock has no category {category!r}")
        for name, spec in lock[category].items():
            merged.setdefault(name, spec)
    lines = []
    for name in sorted(merged):
        spec = merged[name]
        if "version" not in spec:
            raise SystemExit(f"{name}: only exact versions from an index are supported, got {spec}")
        line = f"{name}{spec['version']}"
        if spec.get("markers"):
            line += f" ; {spec['markers']}"
        hashes = " ".join(f"--hash={h}" for h in spec.get("hashes", []))
        lines.append(f"{line} {hashes}".rstrip())
    return lines


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        lock = json.load(fh)
    print("\n".join(requirements(lock, argv[2:])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
