"""Whatever lands in ``landing/`` ends in ``raw/`` or ``quarantine/`` under a name of its own, with its
reason, and a log line; no file stops the others (the watcher locally, the handler against the S3 emulator
with keys URL-encoded in the event as S3 sends them). No Spark."""

from __future__ import annotations

import json
import logging
import os
import threading

import pytest
from conftest import BAD_FILES, BUCKET, good_csv

from fraud_cli.commands.watch import scan
from fraud_detection.file_names import CARD_IN_NAME, MAX_SEGMENT_BYTES
from retrain_lambda import events, intake
from retrain_lambda.intake import Deps, process_objects

CARD = "4000323412349873"
GOOD_NAMES = [  # taken for training under the same name: Spark reads these (tests/test_hostile_inputs.py)
    "données été ✓.csv",
    "a b%20c.csv",
    "q?x#y.csv",
    "s*t[u.csv",
    "sub dir/inner [1].csv",
]


@pytest.fixture
def deps(local_settings) -> Deps:
    return Deps.from_settings(local_settings)


def landing(deps):
    return deps.store.root / "landing"


def drop(deps, name: str, body: bytes) -> None:
    p = landing(deps).joinpath(*name.split("/"))
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(body)


def quarantined(deps) -> dict[str, dict]:
    """quarantine key -> its reason, for every quarantined object (each must have one)."""
    q = deps.store.root / "quarantine"
    files = {p.relative_to(deps.store.root).as_posix() for p in q.rglob("*") if p.is_file()}
    data = {f for f in files if not f.endswith(".reason.json")}
    assert {f + ".reason.json" for f in data} == files - data, files
    return {f: json.loads(deps.store.read_bytes(f + ".reason.json")) for f in data}


def leftover(deps) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(d, f), landing(deps))
        for d, _, fs in os.walk(landing(deps), followlinks=False)
        for f in fs
    )


def test_every_dropped_entry_ends_in_raw_or_quarantine_with_a_reason_and_a_log_line(deps, tmp_path, caplog):
    secret = tmp_path / "outside" / "secret.csv"  # a link's target: its bytes must not be copied
    secret.parent.mkdir()
    secret.write_bytes(good_csv() + b"TARGET-BYTES\n")
    for name in GOOD_NAMES:
        drop(deps, name, good_csv())
    drop(deps, "evil\\..\\x.csv", good_csv())  # one file name on Linux, a traversal on Windows
    drop(deps, ".hidden.csv", good_csv())
    drop(deps, f"card {CARD}.csv", BAD_FILES["wrong-columns.csv"])
    drop(deps, f"{CARD}abcdef.csv", good_csv())  # taken, the card number out of its name
    drop(deps, "20190101_20191231.csv", good_csv())  # date stamps are no card numbers
    drop(deps, "data_20190101-20191231.csv", good_csv())  # nor is a date range
    drop(deps, "4000-3234-1234-9873 export.csv", good_csv())  # a card as printed: 4-4-4-4
    long_name = "é" * 120 + ".csv"  # 244 bytes: quarantine/<name>.reason.json would pass NAME_MAX
    drop(deps, long_name, BAD_FILES["empty.csv"])
    os.symlink(secret, landing(deps) / "link.csv")
    os.symlink(secret.parent, landing(deps) / "linked-dir")
    os.mkfifo(landing(deps) / "pipe.csv")  # opening it to read would block the watcher for good

    caplog.set_level(logging.INFO, logger="retrain_lambda")
    done = threading.Event()
    outcome: dict = {}
    threading.Thread(target=lambda: (outcome.update(r=scan(deps, 0.0)), done.set()), daemon=True).start()
    assert done.wait(60), "the scan blocked"
    res = outcome["r"]
    assert res.error is None, res.error

    status = {f.key: f.status for f in res.intake.files}
    expected = {f"landing/{n}": "accepted" for n in GOOD_NAMES} | {
        "landing/evil\\..\\x.csv": "quarantined",
        "landing/.hidden.csv": "quarantined",
        f"landing/card {CARD}.csv": "quarantined",
        f"landing/{long_name}": "quarantined",
        "landing/link.csv": "quarantined",
        "landing/linked-dir": "quarantined",
        "landing/pipe.csv": "quarantined",
        f"landing/{CARD}abcdef.csv": "accepted",
        "landing/20190101_20191231.csv": "accepted",
        "landing/data_20190101-20191231.csv": "accepted",
        "landing/4000-3234-1234-9873 export.csv": "accepted",
    }
    assert status == expected
    assert leftover(deps) == []
    taken = sorted(k for k in (f.raw_key for f in res.intake.files) if k)
    named = [f"raw/{n}" for n in GOOD_NAMES] + [
        f"raw/{CARD_IN_NAME}abcdef.csv",
        "raw/20190101_20191231.csv",
        "raw/data_20190101-20191231.csv",
        f"raw/{CARD_IN_NAME} export.csv",
    ]
    assert taken == sorted(named)
    for n in GOOD_NAMES:
        assert deps.store.read_bytes(f"raw/{n}") == good_csv()

    q = quarantined(deps)
    by_source = {f.key: f.quarantine_key for f in res.intake.files if f.quarantine_key}
    reasons = {k: q[v]["error"] for k, v in by_source.items()}
    assert "backslash" in reasons["landing/evil\\..\\x.csv"]
    assert "hidden" in reasons["landing/.hidden.csv"]
    assert "missing=" in reasons[f"landing/card {CARD}.csv"]
    assert "empty" in reasons[f"landing/{long_name}"]
    assert "symbolic link" in reasons["landing/link.csv"] and "not followed" in reasons["landing/link.csv"]
    assert "symbolic link" in reasons["landing/linked-dir"]
    assert "FIFO" in reasons["landing/pipe.csv"]
    # visible, storable names: no dot name, no card number, each segment within the length limit
    assert by_source["landing/.hidden.csv"] == "quarantine/_.hidden.csv"
    assert by_source[f"landing/card {CARD}.csv"] == f"quarantine/card {CARD_IN_NAME}.csv"
    assert len(by_source[f"landing/{long_name}"].rsplit("/", 1)[1].encode()) <= MAX_SEGMENT_BYTES
    assert b"TARGET-BYTES" not in deps.store.read_bytes(by_source["landing/link.csv"])
    assert secret.read_bytes().endswith(b"TARGET-BYTES\n")  # the target is left alone
    assert not any(CARD in json.dumps(r) or CARD in k for k, r in q.items())

    logged = {getattr(r, "key", None) for r in caplog.records}
    assert set(status) <= logged, set(status) - logged
    # a run was requested for the accepted files only
    assert sorted(res.intake.launch.files) == sorted(named)


def test_a_second_bad_file_of_the_same_name_keeps_the_first_and_its_reason(deps):
    drop(deps, "bad.csv", BAD_FILES["wrong-columns.csv"])
    first = scan(deps, 0.0).intake.files[0].quarantine_key
    first_reason = deps.store.read_bytes(first + ".reason.json")
    drop(deps, "bad.csv", BAD_FILES["header-only.csv"])
    os.utime(landing(deps) / "bad.csv", ns=(1, 1))  # another object even if the clock did not move
    second = scan(deps, 0.0).intake.files[0].quarantine_key
    drop(deps, "bad.csv", BAD_FILES["binary.csv"])
    third = scan(deps, 0.0).intake.files[0].quarantine_key

    assert first == "quarantine/bad.csv" and len({first, second, third}) == 3
    assert deps.store.read_bytes(first) == BAD_FILES["wrong-columns.csv"]
    assert deps.store.read_bytes(first + ".reason.json") == first_reason
    assert deps.store.read_bytes(second) == BAD_FILES["header-only.csv"]
    assert deps.store.read_bytes(third) == BAD_FILES["binary.csv"]
    q = quarantined(deps)
    assert "no rows" in q[second]["error"] and "not UTF-8" in q[third]["error"]


def test_a_file_whose_handling_fails_never_stops_the_others(deps, monkeypatch):
    real_copy, real_quarantine = intake._copy, intake.quarantine

    def copy(store, src, dst, version_id):
        if "boom" in src:
            raise OSError("disk on fire")
        return real_copy(store, src, dst, version_id)

    def quarantine(store, ev, key, error, **kw):
        if "stuck" in key:
            raise OSError("quarantine unavailable")
        return real_quarantine(store, ev, key, error, **kw)

    monkeypatch.setattr(intake, "_copy", copy)
    monkeypatch.setattr(intake, "quarantine", quarantine)
    for name in ("a.csv", "boom.csv", "stuck.csv", "z.csv"):
        drop(deps, name, good_csv())
    drop(deps, "stuck-bad.csv", b"a,b\n")
    res = scan(deps, 0.0)
    assert res.error and "IntakeIncomplete" not in res.error and "left in landing/" in res.error
    assert leftover(deps) == ["stuck-bad.csv"]  # neither archived nor quarantined: kept for the retry
    q = quarantined(deps)
    assert "disk on fire" in q["quarantine/boom.csv"]["error"]
    assert sorted(o.key for o in deps.store.list("raw/")) == ["raw/a.csv", "raw/stuck.csv", "raw/z.csv"]
    # the next scan (store healthy again) takes the file that was left
    monkeypatch.setattr(intake, "quarantine", real_quarantine)
    again = scan(deps, 0.0)
    assert [f.status for f in again.intake.files] == ["quarantined"] and leftover(deps) == []


# ------------------------------------------------------------------------------ the S3 emulator
S3_NAMES = {  # key under landing/ -> expected status
    "données été ✓.csv": "accepted",
    "%20 and + and space.csv": "accepted",
    "q?x#y*z[1].csv": "accepted",
    "dir/inner.csv": "accepted",
    "a/../b.csv": "quarantined",  # a legal S3 key the store's own key check refuses
    "./c.csv": "quarantined",
    "evil\\..\\x.csv": "quarantined",
    ".hidden.csv": "quarantined",
    "dir2/": "ignored",  # a console "folder": no object to take
}


def test_hostile_keys_against_the_emulator_one_event_all_handled(aws):
    deps = Deps.from_settings(aws.settings)
    records = []
    for name in S3_NAMES:
        key = f"landing/{name}"
        put = aws.put(key, b"" if name.endswith("/") else good_csv())
        ev = events.s3_event(BUCKET, key, size=0 if name.endswith("/") else len(good_csv()),
                             etag=put["ETag"].strip('"'), version_id=put["VersionId"])  # fmt: skip
        records += ev["Records"]
    event = json.loads(json.dumps({"Records": records}))  # as delivered: keys URL-encoded
    assert all("%" in r["s3"]["object"]["key"] or "+" in r["s3"]["object"]["key"] for r in records[:3])
    out = process_objects(events.parse_s3_records(event), deps)

    assert {f.key: f.status for f in out.files} == {f"landing/{n}": s for n, s in S3_NAMES.items()}
    assert sorted(aws.keys("raw/")) == sorted(f"raw/{n}" for n, s in S3_NAMES.items() if s == "accepted")
    assert aws.keys("landing/") == ["landing/dir2/"]
    q = [k for k in aws.keys("quarantine/") if not k.endswith(".reason.json")]
    assert len(q) == 4 and all(f"{k}.reason.json" in aws.keys("quarantine/") for k in q)
    assert not any("/../" in k or "/./" in k or "\\" in k or "/." in k for k in q), q
    assert len(aws.job_runs()) == 1


def test_same_key_bad_twice_on_s3_keeps_both_copies_and_reasons(aws):
    deps = Deps.from_settings(aws.settings)
    key = "landing/bad name.csv"
    outs = []
    for body in (BAD_FILES["wrong-columns.csv"], BAD_FILES["header-only.csv"]):
        put = aws.put(key, body)
        ev = events.s3_event(BUCKET, key, size=len(body), etag=put["ETag"].strip('"'), version_id=put["VersionId"])
        outs.append(process_objects(events.parse_s3_records(ev), deps).files[0].quarantine_key)
    assert outs[0] == "quarantine/bad name.csv" and outs[1] != outs[0]
    body = aws.s3.get_object(Bucket=BUCKET, Key=outs[0])["Body"].read()
    assert body == BAD_FILES["wrong-columns.csv"]
    reasons = [json.loads(aws.s3.get_object(Bucket=BUCKET, Key=k + ".reason.json")["Body"].read()) for k in outs]
    assert "missing=" in reasons[0]["error"] and "no rows" in reasons[1]["error"]


def test_spark_gets_the_name_as_written_with_glob_characters_escaped():
    """What used to break every run: ``Path.as_uri()``'s %-encoding, which Hadoop does not undo. (Spark reading
    these names for real: tests/test_hostile_inputs.py.)"""
    from spark_jobs.extract import spark_path

    assert spark_path("/s/raw/données été ✓ a%20b #1.csv") == "file:///s/raw/données été ✓ a%20b #1.csv"
    assert spark_path("/s/raw/q?x*y[1]{a}.csv") == r"file:///s/raw/q\?x\*y\[1\]\{a\}.csv"
    assert spark_path("s3://b/raw/a b%.csv") == "s3://b/raw/a b%.csv"
