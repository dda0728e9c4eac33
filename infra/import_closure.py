"""The project modules a deployable's entry package reaches through its imports (read with ``ast``).

A deployable ships its own package plus only the shared-library modules that package imports, directly or
through each other. Imports inside functions count too: they run on some paths, so what they name must be
there. Third-party imports are not followed (the deployable's dependency list covers those).
"""

from __future__ import annotations

import ast
from pathlib import Path


def _module_file(root: Path, dotted: str) -> Path | None:
    base = root.joinpath(*dotted.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imported_names(path: Path, package: str) -> set[str]:
    """Dotted names a module imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``: c may be a module)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's own package
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def closure(root: Path, entry_packages: tuple[str, ...], project_packages: tuple[str, ...]) -> list[Path]:
    """Every file of the ``entry_packages`` plus the modules of ``project_packages`` they import, transitively,
    with the ``__init__.py`` of each package on the way. Paths are relative to ``root``, sorted."""
    todo = [p for pkg in entry_packages for p in sorted((root / pkg).rglob("*.py"))]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        rel = path.relative_to(root).with_suffix("")
        package = ".".join(rel.parts[:-1])  # a/b/c.py and a/b/__init__.py both sit in package a.b
        for name in _imported_names(path, package):
            if name.split(".")[0] not in project_packages:
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # the packages on the way, then the module itself
                found = _module_file(root, ".".join(parts[:i]))
                if found is not None and found not in seen:
                    todo.append(found)
    return sorted(p.relative_to(root) for p in seen)
