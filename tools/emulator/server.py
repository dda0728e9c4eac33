"""The local AWS emulator: moto in server mode on 127.0.0.1, with documented adjustments.

    python -m tools.emulator.server [--port 5000]

moto applies a bucket policy's Deny statements but ignores their Conditions, so the template's
conditional Deny statements would deny every request they name. Two kinds are not applied here:
- conditioned only on ``aws:SecureTransport`` = false (TLS only): requests to the emulator count as TLS;
- conditioned only on the SSE-KMS key id header (raw/ and quarantine/ under the data key): moto's policy
  check does not see request headers; the writers' headers are tested instead (tests/infra/test_data_key.py).
The policy document itself is stored unchanged (the checks read it).
"""

from __future__ import annotations

import argparse
import json
import time

_PATCHED = False


def _tls_only_statement(statement: dict) -> bool:
    cond = statement.get("Condition") or {}
    return (
        statement.get("Effect") == "Deny"
        and list(cond) == ["Bool"]
        and {k.lower(): str(v).lower() for k, v in cond["Bool"].items()} == {"aws:securetransport": "false"}
    )


def _kms_key_header_statement(statement: dict) -> bool:
    cond = statement.get("Condition") or {}
    return (
        statement.get("Effect") == "Deny"
        and list(cond) == ["StringNotEquals"]
        and [k.lower() for k in cond["StringNotEquals"]] == ["s3:x-amz-server-side-encryption-aws-kms-key-id"]
    )


def _not_applied(statement: dict) -> bool:
    return _tls_only_statement(statement) or _kms_key_header_statement(statement)


def patch_moto() -> None:
    global _PATCHED
    if _PATCHED:
        return
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.s3.models import FakeBucket

    def get_permission(self, action: str, resource: str):
        if self.policy is None:
            return PermissionResult.NEUTRAL
        doc = json.loads(self.policy.decode() if isinstance(self.policy, bytes) else self.policy)
        statements = doc.get("Statement", [])
        statements = [statements] if isinstance(statements, dict) else statements
        kept = [s for s in statements if not _not_applied(s)]
        if not kept:
            return PermissionResult.NEUTRAL
        return IAMPolicy(json.dumps({**doc, "Statement": kept})).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission
    _PATCHED = True


def start(port: int = 0):
    """Start the emulator in this process; returns (server, endpoint_url)."""
    patch_moto()
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, bound = server.get_host_and_port()
    return server, f"http://{host}:{bound}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=5000)
    server, url = start(p.parse_args().port)
    print(f"emulator listening on {url} (Ctrl-C stops it)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
