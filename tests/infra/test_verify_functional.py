"""The functional parts of the checks: the API answers /ready and scores; a landing/ file is handled."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import verify_ecs_api
import verify_end_to_end

KEY = "test-key-not-a-secret"
HANDLER_WRITTEN = (Path(__file__).resolve().parents[2] / "retrain_lambda" / "handler.py").exists()


def _fake_api(ready_status: int):
    """A stand-in speaking the API's protocol (the real service is tested in tests/api)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/ready":
                self._send(
                    ready_status, {"status": "ready" if ready_status == 200 else "not ready", "model_version": "v1"}
                )
            else:
                self._send(404, {})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.headers.get("X-API-Key") != KEY:
                return self._send(401, {"detail": "missing or invalid API key"})
            self._send(200, {"trans_num": body["trans_num"], "fraud_probability": 0.01, "is_fraud": False,
                             "threshold": 0.5, "request_id": "r", "model": {"version": "v1"}})  # fmt: skip

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.mark.parametrize(("ready", "key", "expected_rc"), [(200, KEY, 0), (503, KEY, 1), (200, "wrong", 1)])
def test_api_functional_checks(healthy, capsys, ready, key, expected_rc):
    server, url = _fake_api(ready)
    try:
        rc = verify_ecs_api.main(healthy.argv("--api-url", url, "--api-key", key))
    finally:
        server.shutdown()
    out = capsys.readouterr().out
    assert rc == expected_rc, out
    if ready != 200:
        assert "FAIL  api: GET" in out and "status 503" in out
    if key != KEY:
        assert "scores the example transaction - status 401" in out


def test_api_example_is_the_sample_row():
    sample = Path("/work/shared/data/sample.csv")
    if not sample.exists():
        pytest.skip("shared sample not present")
    import csv

    row = next(csv.DictReader(sample.open()))
    for name, value in verify_ecs_api.EXAMPLE_TRANSACTION.items():
        assert str(value) == row[name], name


@pytest.mark.skipif(not HANDLER_WRITTEN, reason="retrain_lambda/handler.py is not written yet")
@pytest.mark.aws_component("retrain_lambda")  # the handler runs in this process: its calls are the function's
def test_end_to_end_with_handler_in_process(healthy, capsys):
    rc = verify_end_to_end.main(healthy.argv("--invoke-handler-locally"))
    out = capsys.readouterr().out
    assert rc == 0, out


def test_real_handler_answers_the_lambda_probe_and_touches_nothing(healthy):
    """The probe ``verify_lambda_function`` invokes the deployed function with: the real handler, configured
    as the function is, answers it in a way ``check_probe_answer`` accepts, and writes nothing."""
    import verify_common
    import verify_lambda_function

    args = verify_common.base_parser("").parse_args(healthy.argv())
    dep = verify_common.Deployment(args, session=healthy.session)
    s3 = dep.client("s3")

    def objects() -> list[tuple[str, str]]:
        listed = s3.list_object_versions(Bucket=dep.bucket)
        return sorted((v["Key"], v["VersionId"]) for v in listed.get("Versions", []))

    def claims() -> list:
        return dep.client("dynamodb").scan(TableName=dep.output("IdempotencyTableName"))["Items"]

    before = (objects(), claims())
    event, key = verify_lambda_function.probe_event(dep.bucket, dep.region)
    [answer] = verify_end_to_end._invoke_locally(dep, [event])
    verify_lambda_function.check_probe_answer(answer, key)
    assert (objects(), claims()) == before
