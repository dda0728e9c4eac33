"""End-to-end benchmark of the training pipeline: the Spark job vs a single-process pandas baseline.

For each size: one generated dataset (``tools.generator.generate_csv``: 1,000 cards,
2019-01-01..2020-12-31, fixed seed; cached under ``bench/out/data/``), then, one after another, each in its
own subprocess:

* ``spark``: ``python -m fraud_cli train --input FILE`` with ``FRAUD_STORE_URI`` a fresh folder under
  ``bench/out/pipeline/``; stage timings and metrics from the run record ``runs/<id>.json``;
* ``pandas``: ``bench/pandas_pipeline.py`` (the same steps with pandas / numpy / scikit-learn).

Each run: wall time, peak RSS of the Python driver process (its kernel high-water mark, ``VmHWM``), peak RSS
of the whole process tree (Python + JVM + Python workers; the sum of the processes' RSS, sampled every 0.2 s,
shared pages counted once per process), stage timings, exit code, test metrics. A run is killed after
``--timeout`` seconds. Results go to ``bench/out/pipeline_bench.json`` and the ``## Training pipeline``
section of ``docs/benchmarks.md`` (other sections are left as they are).

    .venv/bin/python bench/pipeline_bench.py --with-kaggle-size          # 100k, 1M, 1.3M, 5M
    .venv/bin/python bench/pipeline_bench.py --sizes 100000              # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.docs_section import write_section  # noqa: E402

OUT = ROOT / "bench" / "out"
DATA = OUT / "data"
RUNS = OUT / "pipeline"
RESULTS = OUT / "pipeline_bench.json"
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Training pipeline"

DEFAULT_SIZES = (100_000, 1_000_000, 5_000_000)
KAGGLE_SIZE = 1_300_000  # rows of the published training file (fraudTrain.csv: 1,296,675)
TARGET_S = 180.0
GEN = {"cards": 1000, "start": date(2019, 1, 1), "end": date(2020, 12, 31), "seed": 0}
SAMPLE_S = 0.2
HEADLINE = ("roc_auc", "pr_auc", "precision", "recall", "f1", "threshold")


# =================================================================================================
# Data
# =================================================================================================


def dataset(rows: int) -> tuple[Path, dict[str, Any]]:
    """The generated CSV for ``rows`` (generated once, reused while its parameters are unchanged)."""
    from tools.generator import generate_csv

    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"transactions_{rows}.csv"
    meta_path = path.with_suffix(".json")
    params = {"rows": rows, **{k: str(v) for k, v in GEN.items()}}
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("params") == params:
            return path, meta | {"reused": True}
    summary = generate_csv(path, rows=rows, **GEN)  # written atomically
    meta = {
        "params": params,
        "rows": summary.rows,
        "frauds": summary.frauds,
        "bytes": path.stat().st_size,
        "generate_s": round(summary.seconds, 1),
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    return path, meta | {"reused": False}


# =================================================================================================
# Running one engine, with its memory watched
# =================================================================================================


def _vm_hwm_bytes(pid: int) -> int | None:
    """The kernel's peak-RSS mark of a live process (Linux), or None."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class Watcher(threading.Thread):
    """Samples the driver's RSS (and its VmHWM) and the RSS sum of its process tree every SAMPLE_S."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.driver_peak = 0
        self.tree_peak = 0
        self.tree_peak_processes = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(SAMPLE_S)

    def sample(self) -> None:
        try:
            driver = self.proc.memory_info().rss
            hwm = _vm_hwm_bytes(self.proc.pid) or 0
            children = self.proc.children(recursive=True)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            return
        tree = driver
        for c in children:
            try:
                tree += c.memory_info().rss
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                pass
        self.samples += 1
        self.driver_peak = max(self.driver_peak, driver, hwm)
        if tree > self.tree_peak:
            self.tree_peak, self.tree_peak_processes = tree, 1 + len(children)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def _kill_tree(proc: subprocess.Popen) -> None:
    """The run's own process group (started with start_new_session), then any descendant left outside it."""
    try:
        descendants = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    _, alive = psutil.wait_procs(descendants, timeout=10)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_watched(cmd: list[str], env: dict[str, str], log_dir: Path, timeout: float) -> dict[str, Any]:
    log_dir.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = log_dir / "stdout.log", log_dir / "stderr.log"
    t0 = time.monotonic()
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True)
        watcher = Watcher(proc.pid)
        watcher.start()
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            watcher.sample()
            _kill_tree(proc)
        finally:
            wall = time.monotonic() - t0
            watcher.stop()
    return {
        "command": " ".join(cmd),
        "exit_code": proc.returncode,
        "timed_out": timed_out,
        "wall_s": round(wall, 2),
        "driver_peak_rss_mb": round(watcher.driver_peak / 2**20, 1),
        "tree_peak_rss_mb": round(watcher.tree_peak / 2**20, 1),
        "tree_processes_at_peak": watcher.tree_peak_processes,
        "memory_samples": watcher.samples,
        "stdout": str(stdout_path.relative_to(ROOT)),
        "stderr": str(stderr_path.relative_to(ROOT)),
    }


def _base_env() -> dict[str, str]:
    """This process's environment (FRAUD_* settings apply to both engines); each run gets its own store."""
    return dict(os.environ) | {"PYTHONUNBUFFERED": "1"}


def _tail(path: Path, n: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def run_spark(rows: int, csv: Path, timeout: float, stamp: str) -> dict[str, Any]:
    work = RUNS / f"spark_{rows}_{stamp}"
    shutil.rmtree(work, ignore_errors=True)
    store = work / "store"
    store.mkdir(parents=True)
    run_id = f"bench-{rows}-{stamp}"
    env = _base_env() | {"FRAUD_STORE_URI": str(store)}
    cmd = [sys.executable, "-m", "fraud_cli", "train", "--input", str(csv), "--run-id", run_id]
    r = run_watched(cmd, env, work, timeout)
    record_path = store / "runs" / f"{run_id}.json"
    r["run_record"] = str(record_path.relative_to(ROOT))
    if record_path.exists():
        rec = json.loads(record_path.read_text())
        r["status"] = rec.get("status")
        r["timings_s"] = rec.get("timings_s", {})
        r["metrics"] = {k: rec.get("metrics", {}).get(k) for k in HEADLINE}
        r["error"] = rec.get("error")
        r["outside_stages_s"] = round(r["wall_s"] - sum(r["timings_s"].values()), 2)  # JVM, session, artifact
    else:
        r["status"], r["timings_s"], r["metrics"] = "no run record", {}, {}
    # exit 3: trained and evaluated, but not published (below the floor): still a complete run
    r["ok"] = not r["timed_out"] and r["exit_code"] in (0, 3) and r["status"] in ("succeeded", "rejected")
    if not r["ok"]:
        r["error"] = r.get("error") or _tail(ROOT / r["stderr"])
    return r


def run_pandas(rows: int, csv: Path, timeout: float, stamp: str) -> dict[str, Any]:
    work = RUNS / f"pandas_{rows}_{stamp}"
    shutil.rmtree(work, ignore_errors=True)
    cmd = [sys.executable, str(ROOT / "bench" / "pandas_pipeline.py"), "--input", str(csv), "--out", str(work / "out")]
    r = run_watched(cmd, _base_env() | {"FRAUD_STORE_URI": str(work / "unused-store")}, work, timeout)
    report: dict[str, Any] = {}
    for line in reversed((ROOT / r["stdout"]).read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            try:
                report = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
    r["timings_s"] = report.get("timings_s", {})
    r["metrics"] = {k: report.get("metrics", {}).get(k) for k in HEADLINE}
    r["feature_check"] = report.get("feature_check")
    r["status"] = "succeeded" if report.get("metrics") else "failed"
    r["ok"] = not r["timed_out"] and r["exit_code"] == 0 and r["status"] == "succeeded"
    if not r["ok"]:
        r["error"] = report.get("error") or _tail(ROOT / r["stderr"])
    return r


ENGINES = {"spark": run_spark, "pandas": run_pandas}


# =================================================================================================
# Machine, report
# =================================================================================================


def machine() -> dict[str, Any]:
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30).stderr.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        java = "not found"
    try:
        import pyspark

        spark = pyspark.__version__
    except ImportError:
        spark = "not installed"
    import numpy
    import pandas
    import sklearn

    return {
        "cpu_count_logical": psutil.cpu_count(logical=True),
        "cpu_count_physical": psutil.cpu_count(logical=False),
        "cpu_model": _cpu_model(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "java": java,
        "spark": spark,
        "pandas": pandas.__version__,
        "numpy": numpy.__version__,
        "scikit_learn": sklearn.__version__,
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _fmt(v: Any, nd: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _growth(results: list[dict[str, Any]], engine: str, metric: str) -> list[str]:
    """Ratios of a metric between consecutive sizes, against the ratio of rows."""
    ok = sorted(
        ((r["rows"], r["engines"][engine][metric]) for r in results if r["engines"].get(engine, {}).get("ok")),
        key=lambda x: x[0],
    )
    out = []
    for (r0, v0), (r1, v1) in zip(ok, ok[1:], strict=False):
        if v0:
            out.append(f"{_rows_label(r1)}/{_rows_label(r0)}: {v1 / v0:.2f}x for {r1 / r0:.2f}x rows")
    return out


def _rows_label(rows: int) -> str:
    if rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    if rows >= 1_000_000:
        return f"{rows / 1_000_000:g}M"
    return f"{rows // 1000}k"


def reproduce_command(args: argparse.Namespace | None) -> str:
    cmd = ".venv/bin/python bench/pipeline_bench.py"
    if args is None or getattr(args, "keep_other_sizes", False):  # merged results: the command for all sizes
        return cmd + " --with-kaggle-size"
    sizes = [s for s in args.sizes if not (args.with_kaggle_size and s == KAGGLE_SIZE)]
    if tuple(sizes) != DEFAULT_SIZES:
        cmd += " --sizes " + " ".join(str(s) for s in sizes)
    if args.with_kaggle_size:
        cmd += " --with-kaggle-size"
    if args.engines != list(ENGINES):
        cmd += " --engines " + " ".join(args.engines)
    if args.timeout != 1800:
        cmd += f" --timeout {args.timeout:g}"
    return cmd


def render_section(doc: dict[str, Any] | None, args: argparse.Namespace | None) -> str:
    lines = [SECTION, ""]
    intro = (
        "The training job end to end (`python -m fraud_cli train`: great-expectations validation, "
        "transactions and features tables, time split, bounded training sample, HistGradientBoosting fit, "
        "evaluation in Spark, artifact) against a single-process pandas version of the same steps "
        "(`bench/pandas_pipeline.py`), on generated data (1,000 cards, 2019-01-01..2020-12-31, seed 0). "
        "Wall time is the whole subprocess (Spark: including JVM and session start). Driver RSS: peak RSS "
        "of the Python process that runs the job (kernel high-water mark). Tree RSS: the largest sampled sum "
        f"of RSS over the driver and all its descendants (JVM, Python workers), every {SAMPLE_S} s; pages "
        "shared between processes are counted once per process. Target on a 2-core machine: the published "
        "file's size (1.3M rows) in under 3 minutes, time growing no worse than linearly with rows, driver "
        "memory independent of row count beyond the training sample (`FRAUD_MAX_TRAINING_ROWS`)."
    )
    lines += [intro, ""]
    if doc is None:
        lines += [
            "_Not yet run at full size._ Run it on a quiet machine (nothing else using the cores):",
            "",
            "```",
            reproduce_command(None),
            "```",
            "",
            "Raw results: `bench/out/pipeline_bench.json`; logs and run records: `bench/out/pipeline/`.",
            "",
        ]
        return "\n".join(lines)

    m = doc["machine"]
    merged = len({r.get("measured") for r in doc["results"]}) > 1
    lines += [
        f"- Date: {doc['date']} (UTC)" + ("; each size says when it was measured" if merged else ""),
        f"- Machine: {m['cpu_count_logical']} logical cores ({m['cpu_model']}), {m['ram_gb']} GB RAM, "
        f"load average at start {m['load_avg_at_start']}",
        f"- Software: Python {m['python']}, {m['java']}, Spark {m['spark']} (local[*]), pandas {m['pandas']}, "
        f"numpy {m['numpy']}, scikit-learn {m['scikit_learn']}",
        f"- Settings: max training rows {doc['settings']['max_training_rows']:,}, "
        f"spark driver memory {doc['settings']['spark_driver_memory']}, "
        f"shuffle partitions {doc['settings']['spark_shuffle_partitions']}",
        f"- Reproduce: `{doc['command']}`",
        "",
    ]
    for r in doc["results"]:
        when = f" (measured {r['measured']} UTC)" if r.get("measured") else ""
        lines += [
            f"### {r['rows']:,} rows{when}",
            "",
            f"Data: `{r['data']['path']}`, {r['data']['bytes'] / 2**20:,.0f} MB, {r['data']['frauds']:,} frauds.",
            "",
            "| engine | rows | wall s | rows/s | driver peak RSS MB | tree peak RSS MB | pr_auc | f1 | status |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for name, e in r["engines"].items():
            status = "ok" if e["ok"] else ("timed out" if e["timed_out"] else f"failed (exit {e['exit_code']})")
            met = e.get("metrics") or {}
            rate = r["rows"] / e["wall_s"] if e["ok"] and e["wall_s"] else None
            lines.append(
                f"| {name} | {r['rows']:,} | {_fmt(e['wall_s'], 1)} | {_fmt(rate)} | "
                f"{_fmt(e['driver_peak_rss_mb'])} | {_fmt(e['tree_peak_rss_mb'])} | "
                f"{_fmt(met.get('pr_auc'), 4)} | {_fmt(met.get('f1'), 4)} | {status} |"
            )
        lines.append("")
        stage_rows = [(n, e) for n, e in r["engines"].items() if e.get("timings_s")]
        if stage_rows:
            for n, e in stage_rows:
                stages = ", ".join(f"{k} {v:g}" for k, v in e["timings_s"].items())
                if "outside_stages_s" in e:
                    stages += f"; outside the stages (JVM + session start, artifact, report) {e['outside_stages_s']:g}"
                lines.append(f"- {n} stage timings (s): {stages}")
            lines.append("")
    lines += ["### Growth with rows", ""]
    for engine in doc["engines"]:
        wall = _growth(doc["results"], engine, "wall_s")
        rss = _growth(doc["results"], engine, "driver_peak_rss_mb")
        lines.append(f"- {engine}: wall time " + ("; ".join(wall) if wall else "n/a (fewer than two sizes)"))
        lines.append(f"- {engine}: driver peak RSS " + ("; ".join(rss) if rss else "n/a (fewer than two sizes)"))
    g = doc.get("growth_1m_5m", {})
    for engine, v in g.items():
        lines.append(
            f"- {engine}: time(5M)/time(1M) = {v['time_ratio']:.2f} (linear: 5.00); "
            f"driver RSS(5M)/RSS(1M) = {v['driver_rss_ratio']:.2f} (independent of rows: 1.00)"
        )
    lines.append("")
    t = doc.get("target")
    if t is not None:
        verdict = "met" if t["met"] else "NOT met"
        lines += [
            f"Target (1.3M rows end to end under {TARGET_S:.0f} s, Spark job): **{verdict}** "
            f"({_fmt(t['wall_s'], 1)} s for {t['rows']:,} rows).",
            "",
        ]
    else:
        lines += ["Target (1.3M rows under 3 minutes): not measured in this run (add `--with-kaggle-size`).", ""]
    lines += ["Raw results: `bench/out/pipeline_bench.json`; logs and run records: `bench/out/pipeline/`.", ""]
    return "\n".join(lines)


# =================================================================================================
# Main
# =================================================================================================


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="rows per dataset")
    p.add_argument("--with-kaggle-size", action="store_true", help=f"also {KAGGLE_SIZE:,} rows (the 3-minute target)")
    p.add_argument("--engines", nargs="+", choices=list(ENGINES), default=list(ENGINES))
    p.add_argument("--timeout", type=float, default=1800, help="seconds per run before it is killed")
    p.add_argument("--no-docs", action="store_true", help=f"do not touch the '{SECTION}' section of {DOCS.name}")
    p.add_argument(
        "--keep-other-sizes",
        action="store_true",
        help=f"keep the results of sizes not run now from {RESULTS.name} (each size's table says when it ran)",
    )
    p.add_argument(
        "--docs-placeholder",
        action="store_true",
        help="only write the section with the reproduce command ('not yet run at full size') and exit",
    )
    args = p.parse_args(argv)
    if args.docs_placeholder:
        write_section(SECTION, render_section(None, None))
        print(f"wrote a placeholder '{SECTION}' section to {DOCS.relative_to(ROOT)}")
        return 0
    sizes = sorted(set(args.sizes) | ({KAGGLE_SIZE} if args.with_kaggle_size else set()))
    args.sizes = sizes

    from fraud_detection.settings import Settings

    s = Settings()
    doc: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "command": reproduce_command(args),
        "machine": machine(),
        "engines": args.engines,
        "generator": {k: str(v) for k, v in GEN.items()},
        "settings": {
            "max_training_rows": s.max_training_rows,
            "spark_master": s.spark_master,
            "spark_driver_memory": s.spark_driver_memory,
            "spark_shuffle_partitions": s.spark_shuffle_partitions,
            "test_months": s.test_months,
            "validation_months": s.validation_months,
            "model": s.model,
        },
        "timeout_s": args.timeout,
        "results": [],
    }
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    if args.keep_other_sizes and RESULTS.exists():
        earlier = json.loads(RESULTS.read_text())
        for r in earlier.get("results", []):
            if r["rows"] not in sizes:
                r.setdefault("measured", earlier.get("date"))
                doc["results"].append(r)
    for rows in sizes:
        t0 = time.monotonic()
        csv, meta = dataset(rows)
        print(
            f"[{rows:,}] data {csv.relative_to(ROOT)} ({'reused' if meta['reused'] else 'generated'}, "
            f"{time.monotonic() - t0:.1f}s)",
            flush=True,
        )
        entry = {
            "rows": rows,
            "measured": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
            "data": {"path": str(csv.relative_to(ROOT)), **meta},
            "engines": {},
        }
        for engine in args.engines:
            r = ENGINES[engine](rows, csv, args.timeout, stamp)
            entry["engines"][engine] = r
            met = r.get("metrics") or {}
            print(
                f"[{rows:,}] {engine}: {'ok' if r['ok'] else 'FAILED'} exit={r['exit_code']} wall={r['wall_s']}s "
                f"driver={r['driver_peak_rss_mb']}MB tree={r['tree_peak_rss_mb']}MB "
                f"pr_auc={_fmt(met.get('pr_auc'), 4)} f1={_fmt(met.get('f1'), 4)}"
                + ("" if r["ok"] else f" error={r.get('error')!r}"),
                flush=True,
            )
        doc["results"].append(entry)
        doc["results"].sort(key=lambda r: r["rows"])
        _save(doc)  # partial results survive an interrupted run

    by_rows = {r["rows"]: r for r in doc["results"]}
    growth = {}
    if 1_000_000 in by_rows and 5_000_000 in by_rows:
        for engine in args.engines:
            a, b = by_rows[1_000_000]["engines"][engine], by_rows[5_000_000]["engines"][engine]
            if a["ok"] and b["ok"]:
                growth[engine] = {
                    "time_ratio": b["wall_s"] / a["wall_s"],
                    "driver_rss_ratio": b["driver_peak_rss_mb"] / a["driver_peak_rss_mb"],
                }
    doc["growth_1m_5m"] = growth
    target = None
    if KAGGLE_SIZE in by_rows and "spark" in by_rows[KAGGLE_SIZE]["engines"]:
        e = by_rows[KAGGLE_SIZE]["engines"]["spark"]
        target = {"rows": KAGGLE_SIZE, "wall_s": e["wall_s"], "ok": e["ok"], "met": e["ok"] and e["wall_s"] < TARGET_S}
    doc["target"] = target
    _save(doc)
    if not args.no_docs:
        write_section(SECTION, render_section(doc, args))

    print("\nsummary:")
    for r in doc["results"]:
        for engine, e in r["engines"].items():
            rate = f"{r['rows'] / e['wall_s']:,.0f} rows/s" if e["ok"] and e["wall_s"] else "-"
            print(
                f"  {r['rows']:>9,} {engine:<6} {'ok' if e['ok'] else 'FAILED':<6} {e['wall_s']:>8.1f}s {rate:>14} "
                f"driver {e['driver_peak_rss_mb']:>7.0f} MB  tree {e['tree_peak_rss_mb']:>7.0f} MB"
            )
    for engine, v in growth.items():
        print(f"  {engine}: time(5M)/time(1M) = {v['time_ratio']:.2f} (5.00 = linear)")
    if target is not None:
        print(f"  target 1.3M rows < {TARGET_S:.0f}s: {'met' if target['met'] else 'NOT met'} ({target['wall_s']}s)")
    print(f"  results: {RESULTS.relative_to(ROOT)}" + ("" if args.no_docs else f"; docs: {DOCS.relative_to(ROOT)}"))
    return 0 if all(e["ok"] for r in doc["results"] for e in r["engines"].values()) else 1


def _save(doc: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    os.replace(tmp, RESULTS)


if __name__ == "__main__":
    sys.exit(main())
