"""The API image as ``api/Dockerfile`` builds it, without a Docker engine: the Dockerfile drives the build.

Each stage's filesystem is a directory (``<work>/<stage>/``), holding only what its COPY and RUN lines put
there. The base image (``python:3.11-slim``) is stood in for by a clean virtualenv of the same CPython
(``standin_env.venv``), into which the Dockerfile's own ``pip install`` line installs: packages come from
the requirements file that the first stage's ``lock_to_requirements.py`` RUN line writes, so only the
locked ``[packages]`` + ``[api]`` categories, with their hashes. The venv is cached by the hash of that
file, so a rerun with an unchanged lock skips the install.

RUN lines are executed only when they are understood (``RUN_HANDLERS``): ``python`` / ``pip`` run in the
stage's working directory; ``mkdir`` is mapped into the stage's directory; ``groupadd`` / ``useradd`` /
``chown`` change the image's user database and owners, which the host's must not take: the user id is
recorded instead and the tree stays owned by someone else (read-only for the process, as ECS's read-only
root filesystem makes it). A RUN line this module does not know fails the build: teach it here.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import standin_env as se

ROOT = se.ROOT
DOCKERFILE = ROOT / "api" / "Dockerfile"
# What the python base image itself sets (docker-library/python's Dockerfile for 3.11 slim): PATH is the
# stand-in venv's, LANG as there.
BASE_IMAGE_ENV = {"LANG": "C.UTF-8"}


class DockerfileError(ValueError):
    pass


@dataclass
class Instruction:
    word: str
    args: str


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)


def parse(path: Path = DOCKERFILE) -> list[Stage]:
    """The Dockerfile's stages (line continuations joined, comments dropped)."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, args = line.partition(" ")
        word, args = word.upper(), args.strip()
        if word == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name, parts[0]))
        elif not stages:
            raise DockerfileError(f"{word} before FROM")
        else:
            stages[-1].instructions.append(Instruction(word, args))
    return stages


def parse_env(args: str) -> dict[str, str]:
    out = {}
    for token in shlex.split(args):
        key, sep, value = token.partition("=")
        if not sep:
            raise DockerfileError(f"ENV {args!r}: only the KEY=VALUE form is supported")
        out[key] = value
    return out


@dataclass
class Image:
    """The built image: its root directory and what its last stage declares."""

    root: Path  # the final stage's filesystem
    workdir: str  # in the image, e.g. /app
    env: dict[str, str]  # base image + Dockerfile ENV
    cmd: list[str]
    healthcheck: list[str]
    user: str
    uid: int | None
    python: Path  # the venv interpreter standing in for the image's python
    python_env: dict[str, str]  # what that interpreter needs on this host (LD_LIBRARY_PATH when mirrored)
    copied: list[str]  # image paths written by COPY (in order)

    def host(self, image_path: str) -> Path:
        return self.root / image_path.lstrip("/")

    @property
    def app(self) -> Path:
        return self.host(self.workdir)

    def on_host(self, value: str, mounts: dict[str, Path]) -> str:
        """An image path in an ENV value: under a writable mount, that mount's host directory; else the
        tree's copy. Other values as they are."""
        for container_path, host in mounts.items():
            if value == container_path or value.startswith(container_path.rstrip("/") + "/"):
                return str(host / value[len(container_path) :].lstrip("/"))
        return str(self.host(value)) if value.startswith("/") else value

    def environment(self, mounts: dict[str, Path]) -> dict[str, str]:
        """The container's environment: the image's ENV (paths mapped), its PATH (the stand-in venv first), its
        user's HOME, /tmp as the temporary directory; nothing of this process's environment."""
        env = {k: self.on_host(v, mounts) for k, v in self.env.items()}
        env.update({"PATH": f"{self.python.parent}:/usr/bin:/bin", "HOME": str(self.app), **self.python_env})
        if "/tmp" in mounts:
            env["TMPDIR"] = str(mounts["/tmp"])
        return env


@dataclass
class _State:
    root: Path
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)

    def host(self, image_path: str) -> Path:
        absolute = image_path if image_path.startswith("/") else f"{self.workdir.rstrip('/')}/{image_path}"
        return self.root / absolute.lstrip("/")


def _copy(sources: list[Path], dest: Path, dest_is_dir: bool) -> None:
    for src in sources:
        if not src.exists():
            raise DockerfileError(f"COPY source {src} does not exist")
        if src.is_dir():  # a directory's contents go into dest
            shutil.copytree(src, dest, dirs_exist_ok=True, symlinks=True)
        else:
            target = dest / src.name if dest_is_dir else dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


def build(work: Path, dockerfile: Path = DOCKERFILE, context: Path = ROOT) -> Image:
    stages = parse(dockerfile)
    states: dict[str, _State] = {}
    image: Image | None = None
    for index, stage in enumerate(stages):
        final = index == len(stages) - 1
        state = _State(work / f"stage-{stage.name}", env=dict(BASE_IMAGE_ENV))
        state.root.mkdir(parents=True)
        states[stage.name] = state
        python, python_env = se.base_python()
        cmd: list[str] = []
        healthcheck: list[str] = []
        user, copied = "root", []
        for ins in stage.instructions:
            if ins.word == "WORKDIR":
                state.workdir = ins.args if ins.args.startswith("/") else f"{state.workdir}/{ins.args}"
                state.host(state.workdir).mkdir(parents=True, exist_ok=True)
            elif ins.word == "ENV":
                state.env.update(parse_env(ins.args))
            elif ins.word == "COPY":
                words = shlex.split(ins.args)
                flags = [w for w in words if w.startswith("--")]
                paths = [w for w in words if not w.startswith("--")]
                src_root = context
                for flag in flags:
                    if flag.startswith("--from="):
                        src_root = states[flag.split("=", 1)[1]].host("/")
                    else:
                        raise DockerfileError(f"COPY {flag}: not supported here")
                *srcs, dest = paths
                if src_root is not context:
                    sources = [src_root / s.lstrip("/") for s in srcs]
                else:
                    sources = [context / s for s in srcs]
                _copy(sources, state.host(dest), dest.endswith("/") or len(srcs) > 1)
                copied.append(posixpath.normpath(dest if dest.startswith("/") else f"{state.workdir}/{dest}"))
            elif ins.word == "RUN":
                python = _run(ins.args, state, python, python_env)
            elif ins.word == "USER":
                user = ins.args
            elif ins.word == "CMD":
                cmd = json.loads(ins.args)
            elif ins.word == "HEALTHCHECK":
                healthcheck = json.loads(ins.args.split(" CMD ", 1)[1])
            elif ins.word in ("EXPOSE", "LABEL", "ARG"):
                continue
            else:
                raise DockerfileError(f"{ins.word}: not supported by this stand-in")
        if final:
            image = Image(
                root=state.root,
                workdir=state.workdir,
                env=state.env,
                cmd=cmd,
                healthcheck=healthcheck,
                user=user,
                uid=state.users.get(user),
                python=python,
                python_env=python_env,
                copied=copied,
            )
    if image is None:
        raise DockerfileError("no stage")
    return image


# ----------------------------------------------------------------------------------------------- RUN
def _run(args: str, state: _State, python: Path, python_env: dict[str, str]) -> Path:
    """Run one RUN line's ``&&``-separated commands; returns the (possibly new) image interpreter."""
    for command in args.split("&&"):
        words = shlex.split(command)
        handler = RUN_HANDLERS.get(words[0])
        if handler is None:
            raise DockerfileError(f"RUN {command.strip()!r}: unknown to tests/shipped_image.py")
        python = handler(command.strip(), words, state, python, python_env)
    return python


def _python(command, words, state, python, python_env) -> Path:
    """``python ...`` in the stage's working directory (shell redirections as written)."""
    path = f"{python.parent}:/usr/bin:/bin"
    line = shlex.quote(str(python)) + command[len("python") :]
    subprocess.run(["sh", "-c", line], cwd=state.host(state.workdir), env={**python_env, "PATH": path}, check=True)
    return python


def _pip(command, words, state, python, python_env) -> Path:
    """``pip install -r requirements.txt``: installs into a clean venv (the stand-in for the image's Python),
    built once per requirements file content."""
    if words[:2] != ["pip", "install"]:
        raise DockerfileError(f"RUN {command!r}: only pip install is supported")
    reqs = [words[i + 1] for i, w in enumerate(words) if w in ("-r", "--requirement")]
    contents = [state.host(r).read_bytes() for r in reqs]

    def install(venv_python: Path, env: dict[str, str]) -> None:
        pip_env = {**env, **{k: v for k, v in state.env.items() if k.startswith("PIP_")}}
        subprocess.run([str(venv_python), "-m", *words], cwd=state.host(state.workdir), env=pip_env, check=True)

    venv_python, _ = se.venv("api-image", se.key_of(command, *contents), install)
    return venv_python


def _mkdir(command, words, state, python, python_env) -> Path:
    for w in words[1:]:
        if not w.startswith("-"):
            state.host(w).mkdir(parents=True, exist_ok=True)
    return python


def _useradd(command, words, state, python, python_env) -> Path:
    """Record the user's id (``--uid``): the process runs under it; the host's user database is untouched."""
    uid = next((int(words[i + 1]) for i, w in enumerate(words) if w in ("--uid", "-u")), None)
    state.users[words[-1]] = uid if uid is not None else 1000
    return python


def _not_applied(command, words, state, python, python_env) -> Path:
    """Group creation and ownership: nothing to do here (the tree is read-only to the process anyway)."""
    return python


RUN_HANDLERS = {
    "python": _python,
    "pip": _pip,
    "mkdir": _mkdir,
    "useradd": _useradd,
    "groupadd": _not_applied,
    "chown": _not_applied,
}
