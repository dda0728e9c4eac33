"""The template deploys into the emulator and every deployment check passes on it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import verify_ecs_api  # tests/ is on sys.path (conftest)
import verify_end_to_end
import verify_glue_job
import verify_iam_roles
import verify_lambda_function

HANDLER_WRITTEN = (Path(__file__).resolve().parents[2] / "retrain_lambda" / "handler.py").exists()


def _run(module, argv, capsys):
    rc = module.main(argv)
    out = capsys.readouterr().out
    return rc, out




@pytest.mark.parametrize(
    "module",
    [verify_glue_job, verify_lambda_function, verify_iam_roles],
    ids=["glue", "lambda", "iam"],
)
def test_configuration_checks_pass(healthy, module, capsys):
    rc, out = _run(module, healthy.argv_for(module), capsys)
    if module is verify_lambda_function and not HANDLER_WRITTEN:
        # until retrain_lambda/ exists the package check must fail, and only it
        fails = [line for line in out.splitlines() if line.startswith("FAIL") and "checks passed" not in line]
        assert len(fails) == 1 and "lacks ['retrain_lambda/handler.py']" in fails[0], out
        pytest.xfail("retrain_lambda/handler.py not written yet: the package check fails as it should")
    assert rc == 0, out
    assert "FAIL" not in out
    assert out.count("PASS") >= 8, out


def test_ecs_api_configuration_passes(healthy, capsys):
    rc, out = _run(verify_ecs_api, healthy.argv("--no-functional"), capsys)
    assert rc == 0, out
    assert "FAIL" not in out
    # moto runs no task: those checks say they were skipped and why, and are not counted as passed
    for name in ("service keeps its tasks running", "deployment steady", "target group has a healthy target"):
        assert f"SKIP  api: {name}" in out and "cannot run ECS tasks" in out, out
    assert "skipped (see SKIP lines)" in out.splitlines()[-1], out


def test_lambda_invoke_is_skipped_on_the_emulator_with_its_reason(healthy, capsys):
    rc, out = _run(verify_lambda_function, healthy.argv_for(verify_lambda_function), capsys)
    assert rc == 0, out
    assert "SKIP  lambda: invoke the function with a probe event - the emulator at" in out, out
    assert "cannot run Lambda code" in out, out


def test_end_to_end_bucket_checks_pass(healthy, capsys):
    rc, out = _run(verify_end_to_end, healthy.argv("--no-functional"), capsys)
    assert rc == 0, out
    assert "bucket policy denies requests without TLS" in out


def test_scripts_run_standalone(healthy):
    """`python tests/verify_x.py` works as documented (own process, arguments, exit code)."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve().parents[1] / "verify_glue_job.py"), *healthy.argv()],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS  glue: job fraud-train-ci exists" in proc.stdout
