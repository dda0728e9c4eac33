"""Clean virtualenvs that stand in for an AWS runtime (the API image, the Lambda runtime), cached by key.

Shared by ``shipped_image.py`` and ``shipped_lambda.py``. A stand-in environment holds only what the runtime
provides plus what the deployable installs; it never sees the repository's own virtualenv or source tree.

- The venvs live under ``.cache/standins/`` (gitignored), one per key (a hash of what gets installed), built
  once: a later run reuses a venv whose ``.complete`` marker exists.
- When the tests run as root, the deployable still runs as an unprivileged user (``setpriv``), as it does
  on AWS. That user cannot read an interpreter installed under ``/root`` (pyenv here), so the base
  interpreter is first mirrored (hard links where possible) into the cache: the stand-in for the
  runtime's own ``/usr/local`` or ``/var/lang``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("FRAUD_STANDIN_CACHE", ROOT / ".cache" / "standins"))
UNPRIVILEGED_UID = 65534  # "nobody": owns nothing in any tree the tests build
PY_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"


def key_of(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


@contextmanager
def _locked(name: str) -> Iterator[None]:
    """One builder at a time per cache entry (two pytest processes may share the cache)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def runs_as_root() -> bool:
    return os.geteuid() == 0


def as_unprivileged(uid: int = UNPRIVILEGED_UID) -> list[str]:
    """The command prefix that runs a deployable as ``uid``, a user owning nothing here (only when we are
    root; otherwise the tests' own user runs it)."""
    if not runs_as_root():
        return []
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


def _readable_by_others(path: Path) -> bool:
    """Every directory from / down to ``path`` lets others traverse it."""
    for p in [path, *path.parents]:
        if p.exists() and not p.stat().st_mode & stat.S_IXOTH:
            return False
    return True


def _mirror(src: Path, dst: Path, ignore: Callable | None = None) -> None:
    """Copy ``src`` to ``dst`` with hard links where the filesystem allows (instant, no extra space)."""

    def link_or_copy(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, symlinks=True, ignore=ignore, copy_function=link_or_copy)


def base_python() -> tuple[Path, dict[str, str]]:
    """The interpreter the stand-ins are built from, and the environment it needs to start.

    The running interpreter's installation, without its site-packages (a runtime's Python has none of
    ours). If the unprivileged user cannot reach it, a mirror of it in the cache; its ``libpython`` is then
    found through ``LD_LIBRARY_PATH`` (the binary's RUNPATH names the unreachable original).
    """
    prefix = Path(sys.base_prefix)
    exe = prefix / "bin" / f"python{PY_VERSION}"
    libdir = Path(sysconfig.get_config_var("LIBDIR") or prefix / "lib")
    if not runs_as_root() or _readable_by_others(exe):
        return exe, {}
    dest = CACHE / f"python-{sys.version.split()[0]}-{key_of(str(prefix))}"
    with _locked(dest.name):
        if not (dest / ".complete").exists():
            shutil.rmtree(dest, ignore_errors=True)
            (dest / "bin").mkdir(parents=True)
            shutil.copy2(exe, dest / "bin" / exe.name)
            (dest / "lib").mkdir()
            for so in libdir.glob("libpython*.so*"):
                shutil.copy2(so, dest / "lib" / so.name, follow_symlinks=False)
            stdlib = prefix / "lib" / f"python{PY_VERSION}"
            ignore = shutil.ignore_patterns("site-packages", "test", "__pycache__", "idlelib", "tkinter", "turtledemo")
            _mirror(stdlib, dest / "lib" / stdlib.name, ignore)
            (dest / "lib" / stdlib.name / "site-packages").mkdir()
            (dest / ".complete").touch()
    return dest / "bin" / exe.name, {"LD_LIBRARY_PATH": str(dest / "lib")}


def venv(name: str, key: str, install: Callable[[Path, dict[str, str]], None]) -> tuple[Path, dict[str, str]]:
    """A clean virtualenv ``<cache>/<name>-<key>`` made with ``python -m venv`` from ``base_python()``;
    ``install(venv_python, env)`` fills it once. Returns the venv's interpreter and the environment it needs."""
    python, env = base_python()
    dest = CACHE / f"{name}-{key_of(key, sys.version, str(python))}"  # a new interpreter: a new venv
    with _locked(dest.name):
        if not (dest / ".complete").exists():
            shutil.rmtree(dest, ignore_errors=True)
            run_env = {"PATH": "/usr/bin:/bin", **env}
            subprocess.run([str(python), "-m", "venv", str(dest)], check=True, env=run_env)
            install(dest / "bin" / "python", {**run_env, "PATH": f"{dest / 'bin'}:/usr/bin:/bin"})
            (dest / ".complete").touch()
            for stale in CACHE.glob(f"{name}-*"):  # built from an older lock or interpreter: ~0.6 GB each
                if stale.is_dir() and stale != dest:
                    shutil.rmtree(stale, ignore_errors=True)
    return dest / "bin" / "python", env


def site_packages(venv_python: Path) -> Path:
    return venv_python.parent.parent / "lib" / f"python{PY_VERSION}" / "site-packages"


def make_read_only(tree: Path) -> None:
    """``chmod -R a-w``: what a read-only root filesystem does to the deployable's own files."""
    for p in [tree, *tree.rglob("*")]:
        if not p.is_symlink():
            os.chmod(p, p.stat().st_mode & ~0o222)


def make_writable_again(tree: Path) -> None:
    for p in [tree, *tree.rglob("*")]:
        if not p.is_symlink():
            os.chmod(p, p.stat().st_mode | 0o200)


def writable_dir(path: Path, uid: int = UNPRIVILEGED_UID) -> Path:
    """A directory the unprivileged user may write (the runtime's /tmp)."""
    path.mkdir(parents=True, exist_ok=True)
    if runs_as_root():
        os.chown(path, uid, uid)
    return path


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A fresh directory the unprivileged user can traverse, removed afterwards. Not under pytest's tmp
    root: pytest (any concurrent session of the same user) resets that to 0700."""
    path = Path(tempfile.mkdtemp(prefix=f"fraud-{prefix}-"))
    os.chmod(path, 0o755)  # noqa: S103 - the unprivileged user reads the deployable from here
    try:
        yield path
    finally:
        make_writable_again(path)
        shutil.rmtree(path, ignore_errors=True)
