"""Start training runs, one at a time, without losing a request: a local subprocess here, Glue on AWS.

Both launchers share one rule. A request either starts a run now or, while a run is going, becomes
*the* pending request (later requests merge into it); when the running job ends, one follow-up run
starts for everything pending. A run reads all of ``raw/``, so a file is covered by any run that
starts after it was archived: a run that starts takes the pending request with it.

* ``LocalLauncher``: the request is recorded in the key-value store, then a detached worker
  (``python -m fraud_detection.launcher``) drains it while holding ``<store>/state/train.lock``; each
  run is ``python glue/train_job.py --store_uri <store> --input <store>/raw --trigger T --run_id ID``
  (the Glue job's own entry script). A worker
  that finds the lock taken exits: the holder picks the request up before it lets go.
* ``GlueLauncher``: ``glue.start_job_run``; on ``ConcurrentRunsExceededException`` the request is
  recorded, and the Lambda's "Glue Job State Change" handler (``on_job_state_change``) starts it.

What each request became is kept in ``runs/requests/<run_id>.json`` (``LaunchRecord``) beside the run
records the training job writes (``runs/<run_id>.json``).
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from fraud_detection import layout
from fraud_detection.idempotency import KeyValueStore, open_kv, state_dir
from fraud_detection.runs import RunRecord, load_run, new_run_id, save_run
from fraud_detection.storage import LocalStore, StorageError, Store

log = logging.getLogger(__name__)

REQUESTS = layout.RUN_REQUESTS
PENDING_TTL_S = 14 * 24 * 3600
# A worker that finds the run lock taken tries again for this long: an ``is_running`` probe holds it for
# microseconds, a run for minutes. Giving up at once stranded a request whenever a probe was in the way.
WORKER_LOCK_WAIT_S = 1.0
TRAIN_SCRIPT = "glue/train_job.py"  # the Glue job's entry script, also the local launcher's
FINAL = ("succeeded", "rejected", "failed")
GLUE_ENDED = ("SUCCEEDED", "FAILED", "TIMEOUT", "STOPPED", "ERROR")
GLUE_FAILED = ("FAILED", "TIMEOUT", "STOPPED", "ERROR")
GLUE_ACTIVE = ("STARTING", "RUNNING", "STOPPING", "WAITING")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LaunchError(RuntimeError):
    pass


@dataclass
class LaunchResult:
    status: Literal["started", "pending"]
    run_id: str
    trigger: str
    files: list[str] = field(default_factory=list)
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LaunchRecord(BaseModel):
    """What a retraining request became (``runs/requests/<run_id>.json``)."""

    run_id: str
    trigger: str
    files: list[str] = Field(default_factory=list, description="raw/ keys whose arrival asked for this run")
    launcher: str
    status: Literal["queued", "started", "finished"] = "queued"
    requested_at: str
    started_at: str | None = None
    finished_at: str | None = None
    job_run_id: str | None = None  # Glue JobRunId
    exit_code: int | None = None
    merged_into: str | None = None  # a run that started first and covers these files


def request_key(run_id: str) -> str:
    return f"{REQUESTS}/{run_id}.json"


def save_request(store: Store, rec: LaunchRecord) -> None:
    store.write_bytes(request_key(rec.run_id), rec.model_dump_json(indent=2).encode())


def load_request(store: Store, run_id: str) -> LaunchRecord | None:
    try:
        return LaunchRecord.model_validate_json(store.read_bytes(request_key(run_id)))
    except StorageError:
        return None


def list_requests(store: Store) -> dict[str, LaunchRecord]:
    out = {}
    for o in store.list(f"{REQUESTS}/"):
        if o.key.endswith(".json"):
            rec = LaunchRecord.model_validate_json(store.read_bytes(o.key))
            out[rec.run_id] = rec
    return out


def _merge_pending(kv: KeyValueStore, key: str, trigger: str, files: list[str], run_id: str | None = None) -> dict:
    defaults = {"run_id": run_id or new_run_id(), "trigger": trigger, "requested_at": utc_now()}
    return kv.append(key, "files", files, defaults, ttl_s=PENDING_TTL_S)


def _mark_merged(store: Store, covered: dict | None, into: str) -> list[str]:
    """A pending request covered by a run that started: point its record at that run."""
    if not covered or covered.get("run_id") == into:
        return list(covered.get("files", [])) if covered else []
    rec = load_request(store, covered["run_id"])
    if rec is not None and rec.status == "queued":
        rec.merged_into, rec.status, rec.finished_at = into, "finished", utc_now()
        save_request(store, rec)
    return list(covered.get("files", []))


def _record_pending(store: Store, launcher: str, pend: dict) -> None:
    """The launch record of a pending request as ``_merge_pending`` left it (status: queued)."""
    save_request(
        store,
        LaunchRecord(
            run_id=pend["run_id"],
            trigger=pend["trigger"],
            files=pend["files"],
            launcher=launcher,
            requested_at=pend["requested_at"],
        ),
    )


# ------------------------------------------------------------------------------------------ local
class LocalLauncher:
    """Subprocess training runs, serialised by a file lock, with one follow-up for what arrived meanwhile."""

    name = "local"

    def __init__(self, settings, store: Store, kv: KeyValueStore | None = None) -> None:
        if not isinstance(store, LocalStore):
            raise LaunchError("the local launcher needs a local store (FRAUD_STORE_URI a folder); use launcher=glue")
        self.settings = settings
        self.store = store
        self.kv = kv or open_kv(settings, store)
        self.state = state_dir(settings, store)
        self.lock_path = self.state / "train.lock"
        self.pending_key = "launcher:pending:local"
        self._children: list[subprocess.Popen] = []

    # --- the lock that serialises runs ----------------------------------------------------------
    @contextmanager
    def _try_lock(self, wait_s: float = 0.0) -> Iterator[bool]:
        """The run lock if free within ``wait_s`` (True), else False. ``is_running`` probes with it too, so
        a probe holds the lock for microseconds; a worker waits ``WORKER_LOCK_WAIT_S`` before concluding
        that a run holds it (which then picks up the worker's request when it ends)."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        yield False
                        return
                    time.sleep(0.02)
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())  # who holds it: `fraud runs` / tests can tell
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def is_running(self) -> bool:
        with self._try_lock() as got:
            return not got

    def holder_pid(self) -> int | None:
        """Process id of the worker running training now, if any (its process group holds the run)."""
        if not self.is_running():
            return None
        try:
            return int(self.lock_path.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def pending(self) -> dict | None:
        return self.kv.get(self.pending_key)

    def is_idle(self) -> bool:
        self._reap()
        return not self.is_running() and self.pending() is None and not self._children

    # --- requests -------------------------------------------------------------------------------
    def request_run(self, trigger: str, files: list[str]) -> LaunchResult:
        # Recorded before the lock is looked at: a worker re-reads the pending request after it lets go
        # of the lock, so a request can never fall between "run ended" and "lock released".
        pend = _merge_pending(self.kv, self.pending_key, trigger, files)
        running = self.is_running()
        _record_pending(self.store, self.name, pend)
        self._spawn_worker()
        status = "pending" if running else "started"
        log.info("training requested", extra={"run_id": pend["run_id"], "launch": status, "files": files})
        return LaunchResult(status, pend["run_id"], pend["trigger"], list(pend["files"]), "local subprocess")

    def _spawn_worker(self) -> None:
        self._reap()
        logs = self.state / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / "launcher.log", "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "fraud_detection.launcher"],
                env=child_env(self.settings, self.store),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the watcher / CLI that asked for it
                cwd=str(_project_root()),
            )
        self._children.append(proc)

    def _reap(self) -> None:
        self._children = [p for p in self._children if p.poll() is None]

    # --- the worker -----------------------------------------------------------------------------
    def drain(self, max_runs: int = 20) -> int:
        """Run pending requests one by one while holding the lock; returns how many runs it made."""
        runs = 0
        for _ in range(max_runs):
            with self._try_lock(WORKER_LOCK_WAIT_S) as got:
                if not got:
                    return runs  # a run holds it: the holder will see our request before it lets go
                while runs < max_runs:
                    req = self.kv.take(self.pending_key)
                    if req is None:
                        break
                    self._run_one(req)
                    runs += 1
            if self.pending() is None or runs >= max_runs:
                return runs
        return runs

    def _run_one(self, req: dict) -> int:
        run_id, trigger = req["run_id"], req["trigger"]
        rec = load_request(self.store, run_id) or LaunchRecord(
            run_id=run_id, trigger=trigger, launcher=self.name, requested_at=req.get("requested_at", utc_now())
        )
        rec.files = list(dict.fromkeys([*rec.files, *req.get("files", [])]))
        rec.status, rec.started_at = "started", utc_now()
        save_request(self.store, rec)
        # The same entry script and options as the Glue job (glue/train_job.py), run on local Spark.
        base = self.settings.local_train_command.split() or [sys.executable, str(_project_root() / TRAIN_SCRIPT)]
        cmd = [*base, "--store_uri", self.store.root_uri, "--input", self.store.uri(layout.RAW)]
        cmd += ["--trigger", trigger, "--run_id", run_id]
        log.info("training run starting", extra={"run_id": run_id, "trigger": trigger})
        (self.state / "logs").mkdir(parents=True, exist_ok=True)
        with open(self.state / "logs" / f"train-{run_id}.log", "ab") as out:
            try:
                rc = subprocess.run(
                    cmd,
                    env=child_env(self.settings, self.store),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=self.settings.train_timeout_s,
                    cwd=str(_project_root()),
                ).returncode
                error = f"training process exited with code {rc}"
            except subprocess.TimeoutExpired:
                rc, error = 124, f"training process killed after {self.settings.train_timeout_s}s"
            except BaseException as exc:  # the worker itself is stopped (SIGTERM / Ctrl-C): the run is over
                why = f"launcher stopped during the run ({type(exc).__name__})"
                mark_failed_if_unfinished(self.store, run_id, trigger, why, rec.started_at)
                raise
        mark_failed_if_unfinished(self.store, run_id, trigger, error, started_at=rec.started_at)
        rec.status, rec.finished_at, rec.exit_code = "finished", utc_now(), rc
        save_request(self.store, rec)
        log.info("training run ended", extra={"run_id": run_id, "exit_code": rc})
        return rc


def mark_failed_if_unfinished(store: Store, run_id: str, trigger: str, error: str, started_at: str | None) -> None:
    """A job that died without writing its outcome (killed, out of memory) still shows as failed."""
    try:
        record = load_run(store, run_id)
    except StorageError:
        record = RunRecord(run_id=run_id, trigger=trigger, started_at=started_at or utc_now(), status="running")
    if record.status in FINAL:
        return
    record.status, record.error, record.finished_at = "failed", error, utc_now()
    save_run(store, record)
    log.error("training run failed without a result; latest unchanged", extra={"run_id": run_id, "error": error})


def _project_root() -> Path:
    return Path(__file__).resolve().parents[1]


def child_env(settings, store: Store) -> dict[str, str]:
    """The environment of a training subprocess: this process's settings, whatever their source."""
    env = dict(os.environ)
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"FRAUD_{name.upper()}"] = str(value)
    env["FRAUD_STORE_URI"] = store.root_uri
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    root = str(_project_root())
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


# ------------------------------------------------------------------------------------------- Glue
class GlueLauncher:
    """``glue.start_job_run``; a request made while the job runs waits for its "job ended" event."""

    name = "glue"

    def __init__(self, settings, store: Store, kv: KeyValueStore | None = None, glue=None) -> None:
        import boto3

        self.settings = settings
        self.store = store
        self.kv = kv or open_kv(settings, store)
        self.glue = glue or boto3.client(
            "glue", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region
        )
        self.job = settings.glue_job_name
        self.pending_key = f"launcher:pending:glue:{self.job}"

    def job_arguments(self, run_id: str, trigger: str) -> dict[str, str]:
        return {
            "--store_uri": self.store.root_uri,
            "--input": self.store.uri(layout.RAW) + "/",
            "--trigger": trigger,
            "--run_id": run_id,
        }

    def _start(self, run_id: str, trigger: str) -> str | None:
        """The new JobRunId, or None when the job is already at its concurrency limit."""
        try:
            r = self.glue.start_job_run(JobName=self.job, Arguments=self.job_arguments(run_id, trigger))
        except self.glue.exceptions.ConcurrentRunsExceededException:
            return None
        self.kv.put(f"launcher:glue-run:{r['JobRunId']}", {"run_id": run_id, "trigger": trigger}, ttl_s=PENDING_TTL_S)
        return r["JobRunId"]

    def pending(self) -> dict | None:
        return self.kv.get(self.pending_key)

    def active_runs(self) -> list[str]:
        runs = self.glue.get_job_runs(JobName=self.job, MaxResults=50).get("JobRuns", [])
        return [r["Id"] for r in runs if r.get("JobRunState") in GLUE_ACTIVE]

    def request_run(self, trigger: str, files: list[str]) -> LaunchResult:
        run_id = new_run_id()
        job_run_id = self._start(run_id, trigger)
        if job_run_id is not None:
            covered = _mark_merged(self.store, self.kv.take(self.pending_key), run_id)
            all_files = list(dict.fromkeys([*files, *covered]))
            save_request(
                self.store,
                LaunchRecord(
                    run_id=run_id,
                    trigger=trigger,
                    files=all_files,
                    launcher=self.name,
                    status="started",
                    requested_at=utc_now(),
                    started_at=utc_now(),
                    job_run_id=job_run_id,
                ),
            )
            log.info("glue job run started", extra={"run_id": run_id, "job_run_id": job_run_id})
            return LaunchResult("started", run_id, trigger, all_files, job_run_id)
        pend = _merge_pending(self.kv, self.pending_key, trigger, files, run_id)
        _record_pending(self.store, self.name, pend)
        log.info("glue job busy: request pending", extra={"run_id": pend["run_id"], "files": files})
        # The running job may have ended between start_job_run and the write above, its "ended" event
        # finding nothing to start: look once more.
        if not self.active_runs():
            started = self.start_pending()
            if started is not None and started.status == "started":
                return started
        return LaunchResult("pending", pend["run_id"], pend["trigger"], list(pend["files"]), "waiting for the run")

    def start_pending(self) -> LaunchResult | None:
        """Start the pending request, if any (the follow-up run). None when nothing is pending."""
        req = self.kv.take(self.pending_key)
        if req is None:
            return None
        run_id, trigger = req["run_id"], req["trigger"]
        job_run_id = self._start(run_id, trigger)
        if job_run_id is None:  # someone else started a run first: it stays pending for that one's end
            _merge_pending(self.kv, self.pending_key, trigger, req.get("files", []), run_id)
            return LaunchResult("pending", run_id, trigger, req.get("files", []), "job still busy")
        rec = load_request(self.store, run_id) or LaunchRecord(
            run_id=run_id, trigger=trigger, launcher=self.name, requested_at=req.get("requested_at", utc_now())
        )
        rec.files = list(dict.fromkeys([*rec.files, *req.get("files", [])]))
        rec.status, rec.started_at, rec.job_run_id = "started", utc_now(), job_run_id
        save_request(self.store, rec)
        log.info("follow-up glue job run started", extra={"run_id": run_id, "job_run_id": job_run_id})
        return LaunchResult("started", run_id, trigger, rec.files, job_run_id)

    def on_job_state_change(self, job_run_id: str, state: str, message: str = "") -> dict[str, Any]:
        """A run of our job changed state: record a failure the job could not, then start the follow-up."""
        out: dict[str, Any] = {"job_run_id": job_run_id, "state": state}
        if state not in GLUE_ENDED:
            return out | {"action": "none (not an end state)"}
        ours = self.kv.get(f"launcher:glue-run:{job_run_id}")
        if ours:
            out["run_id"] = ours["run_id"]
            rec = load_request(self.store, ours["run_id"])
            if rec is not None:
                rec.status, rec.finished_at = "finished", utc_now()
                save_request(self.store, rec)
            if state in GLUE_FAILED:
                err = f"Glue job run {job_run_id} ended {state}" + (f": {message}" if message else "")
                mark_failed_if_unfinished(self.store, ours["run_id"], ours.get("trigger", "file"), err, None)
        started = self.start_pending()
        out["follow_up"] = started.as_dict() if started else None
        return out


def launcher_from_settings(settings, store: Store, kv: KeyValueStore | None = None):
    return GlueLauncher(settings, store, kv) if settings.launcher == "glue" else LocalLauncher(settings, store, kv)


# ------------------------------------------------------------------------------------------ waits
def wait_for_run(store: Store, run_id: str, timeout_s: float, poll_s: float = 1.0) -> RunRecord | None:
    """The run's record once it is final (following a merge), or None after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        req = load_request(store, run_id)
        if req is not None and req.merged_into:
            run_id = req.merged_into
        try:
            record = load_run(store, run_id)
            if record.status in FINAL:
                return record
        except (StorageError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))


def main(argv: list[str] | None = None) -> int:
    """The detached worker of the local launcher: drain the pending requests, then exit."""
    from fraud_detection.logs import configure_logging
    from fraud_detection.settings import get_settings
    from fraud_detection.storage import store_from_settings

    argparse.ArgumentParser(description=main.__doc__).parse_args(argv)
    configure_logging("INFO")
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # stop = record the run as failed
    settings = get_settings()
    launcher = LocalLauncher(settings, store_from_settings(settings))
    runs = launcher.drain()
    log.info("launcher worker done", extra={"runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
