"""The synthetic data generator: format, determinism, contract, fraud behaviour, streaming memory."""

from __future__ import annotations

import calendar
import csv
import io
import re
import subprocess
import sys
import tracemalloc
from collections import defaultdict
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest

from fraud_cli.cli import main as cli_main
from fraud_detection import contract, features
from tools import generator

# The header of the published files (and of tests/fixtures/published_sample.csv), leading unnamed index column.
EXPECTED_HEADER = (
    ",trans_date_trans_time,cc_num,merchant,category,amt,first,last,gender,street,city,state,zip,lat,long,"
    "city_pop,job,dob,trans_num,unix_time,merch_lat,merch_long,is_fraud"
)
SAMPLE = Path(__file__).parent / "fixtures" / "published_sample.csv"  # rows from the published simulator


def _csv_text(**kwargs) -> str:
    buf = io.StringIO()
    generator.generate_csv(buf, **kwargs)
    return buf.getvalue()


def _parse(text: str) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def medium() -> tuple[str, list[dict[str, str]]]:
    """40k rows, 150 cards, two years, with a raised fraud rate so fraud statistics are stable."""
    text = _csv_text(rows=40_000, cards=150, seed=11, fraud_rate=0.02)
    return text, list(csv.DictReader(io.StringIO(text, newline="")))


# --- format ---------------------------------------------------------------------------------------


def test_header_is_the_published_header():
    text = _csv_text(rows=10, cards=3)
    assert text.splitlines()[0] == EXPECTED_HEADER
    assert generator.header_line() == EXPECTED_HEADER + "\n"
    assert contract.check_header(EXPECTED_HEADER.split(",")) == list(contract.COLUMN_NAMES)
    assert SAMPLE.read_text().splitlines()[0] == EXPECTED_HEADER


def test_without_index_column():
    text = _csv_text(rows=50, cards=5, with_index=False)
    header, rows = _parse(text)
    assert header == list(contract.COLUMN_NAMES)
    assert all(len(r) == len(contract.COLUMN_NAMES) for r in rows)
    with_index = _csv_text(rows=50, cards=5)
    # same data, the index column aside
    assert [",".join(r[1:]) for r in _parse(with_index)[1]] == [",".join(r) for r in rows]


def test_index_column_counts_from_index_start():
    _, rows = _parse(_csv_text(rows=25, cards=5, index_start=100))
    assert [int(r[0]) for r in rows] == list(range(100, 125))


def test_line_endings_and_csv_quoting_are_python_csv_minimal():
    text = _csv_text(rows=3000, cards=60, seed=3)
    assert "\r" not in text and text.endswith("\n")
    header, rows = _parse(text)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(header)
    w.writerows(rows)
    assert out.getvalue() == text  # byte-identical round trip: quoting exactly as csv.writer does it
    merchants = {r[3] for r in rows}
    jobs = {r[16] for r in rows}
    assert any("," in m for m in merchants) and any("," not in m for m in merchants)
    assert any("," in j for j in jobs)
    assert all(m.startswith("fraud_") for m in merchants)


@pytest.mark.parametrize("rows", [1, 7, 1000, 12_345])
def test_exact_row_count(rows):
    text = _csv_text(rows=rows, cards=20, seed=rows)
    assert text.count("\n") == rows + 1


def test_exact_row_count_in_a_single_day_and_fraud_count_is_rounded_target():
    s = generator.generate_csv(io.StringIO(), rows=5000, cards=50, start=date(2020, 2, 29), end=date(2020, 2, 29))
    assert s.rows == 5000 and s.frauds == round(5000 * 0.005)


def test_deterministic_by_seed(tmp_path):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    sa = generator.generate_csv(a, rows=30_000, cards=100, seed=5)
    generator.generate_csv(b, rows=30_000, cards=100, seed=5)
    generator.generate_csv(c, rows=30_000, cards=100, seed=6)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert sa.path == str(a) and sa.rows == 30_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv", "c.csv"]  # no partial files left


def test_generate_rows_is_the_csv_data():
    kwargs = dict(rows=800, cards=30, seed=9, start=date(2020, 1, 1), end=date(2020, 3, 31), fraud_rate=0.01)
    rows = generator.generate_rows(**kwargs)
    _, parsed = _parse(_csv_text(**kwargs, with_index=False))
    assert len(rows) == 800
    assert set(rows[0]) == set(contract.COLUMN_NAMES)
    assert [[r[c] for c in contract.COLUMN_NAMES] for r in rows] == parsed


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(rows=0),
        dict(rows=10, cards=0),
        dict(rows=10, start=date(2020, 1, 2), end=date(2020, 1, 1)),
        dict(rows=10, fraud_rate=1.0),
        dict(rows=10, fraud_rate=-0.1),
    ],
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        generator.generate_csv(io.StringIO(), **kwargs)


# --- contract -------------------------------------------------------------------------------------

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def test_every_row_follows_the_contract(medium):
    _, rows = medium
    start_ts = datetime(2019, 1, 1)
    end_ts = datetime(2020, 12, 31, 23, 59, 59)
    prev = start_ts
    trans_nums = set()
    profiles: dict[str, tuple] = {}
    for r in rows:
        ts = datetime.strptime(r["trans_date_trans_time"], contract.TIMESTAMP_FORMAT_PY)
        assert start_ts <= ts <= end_ts
        assert ts >= prev  # sorted by time
        prev = ts
        assert int(r["unix_time"]) == calendar.timegm(ts.timetuple()) - generator.UNIX_TIME_OFFSET_S
        assert re.fullmatch(r"[0-9]{11,19}", r["cc_num"])
        assert re.fullmatch(contract.BY_NAME["cc_num"].regex, r["cc_num"])
        assert r["category"] in contract.CATEGORIES
        assert re.fullmatch(r"[0-9]+\.[0-9]{2}", r["amt"]) and float(r["amt"]) > 0
        assert r["gender"] in contract.GENDERS
        assert re.fullmatch(r"[A-Z]{2}", r["state"]) and re.fullmatch(r"[0-9]{5}", r["zip"])
        assert re.fullmatch(r"-?[0-9]+\.[0-9]{1,4}", r["lat"]) and re.fullmatch(r"-?[0-9]+\.[0-9]{1,4}", r["long"])
        assert re.fullmatch(r"-?[0-9]+\.[0-9]{6}", r["merch_lat"]) and re.fullmatch(
            r"-?[0-9]+\.[0-9]{6}", r["merch_long"]
        )
        lat, lon = float(r["lat"]), float(r["long"])
        mlat, mlon = float(r["merch_lat"]), float(r["merch_long"])
        assert -90 <= lat <= 90 and -180 <= lon <= 180 and -90 <= mlat <= 90 and -180 <= mlon <= 180
        assert abs(mlat - lat) <= 1.0 + 1e-6 and abs(mlon - lon) <= 1.0 + 1e-6
        assert int(r["city_pop"]) > 0
        dob = datetime.strptime(r["dob"], contract.DATE_FORMAT_PY).date()
        assert 18 <= (ts.date() - dob).days / 365.25 <= 90
        assert HEX32.fullmatch(r["trans_num"])
        trans_nums.add(r["trans_num"])
        assert r["is_fraud"] in ("0", "1")
        assert r[""].isdigit()
        profile = tuple(
            r[c] for c in ("first", "last", "gender", "street", "city", "state", "zip", "lat", "job", "dob")
        )
        assert profiles.setdefault(r["cc_num"], profile) == profile  # a card is one persistent cardholder
    assert len(trans_nums) == len(rows)
    assert len(profiles) == 150
    assert {r["category"] for r in rows} == set(contract.CATEGORIES)


# --- behaviour ------------------------------------------------------------------------------------


def _arrays(rows):
    y = np.array([int(r["is_fraud"]) for r in rows])
    amt = np.array([float(r["amt"]) for r in rows])
    hour = np.array([int(r["trans_date_trans_time"][11:13]) for r in rows])
    night = (hour >= 22) | (hour < 4)
    ts = np.array([calendar.timegm(datetime.strptime(r["trans_date_trans_time"], "%Y-%m-%d %H:%M:%S").timetuple())
                   for r in rows])  # fmt: skip
    card = np.array([r["cc_num"] for r in rows])
    cat = np.array([r["category"] for r in rows])
    return y, amt, night, ts, card, cat


def test_realized_fraud_rate_is_the_target():
    s = generator.generate_csv(io.StringIO(), rows=100_000, cards=500, seed=1)
    assert s.frauds == 500 and s.fraud_rate == pytest.approx(0.005)
    assert 40 <= s.episodes <= 250 and s.fraud_cards <= s.episodes
    assert generator.generate_csv(io.StringIO(), rows=5000, cards=50, fraud_rate=0.0).frauds == 0


def test_fraud_behaviour(medium):
    _, rows = medium
    y, amt, night, ts, card, cat = _arrays(rows)
    assert y.sum() == 800
    # night: most fraud, few legit
    assert 0.08 <= night[y == 0].mean() <= 0.18
    assert night[y == 1].mean() >= 0.6
    # amounts far above the card's habit
    legit_median = {c: np.median(amt[(card == c) & (y == 0)]) for c in np.unique(card[y == 1])}
    ratios = np.array([a / legit_median[c] for a, c in zip(amt[y == 1], card[y == 1], strict=True)])
    assert np.median(ratios) >= 4.0
    # but not trivially: some fraud is modest, some legit is large
    assert (amt[y == 1] < 50).mean() >= 0.05
    assert (amt[y == 0] > 300).sum() > (amt[y == 1] > 300).sum()
    # mostly online / high-value categories
    high_value = np.isin(cat, ["shopping_net", "misc_net", "grocery_pos", "shopping_pos", "gas_transport"])
    assert high_value[y == 1].mean() >= 0.75
    # clustered in episodes: another fraud on the same card within 72 h
    clustered = 0
    fraud_idx = np.flatnonzero(y == 1)
    by_card: dict[str, list[int]] = defaultdict(list)
    for i in fraud_idx:
        by_card[card[i]].append(int(ts[i]))
    for times in by_card.values():
        t = np.array(times)
        for x in t:
            clustered += int(np.any((np.abs(t - x) <= 72 * 3600) & (t != x)) or np.sum(t == x) > 1)
    assert clustered / len(fraud_idx) >= 0.9
    # episodes spread over the whole range
    years = np.array([r["trans_date_trans_time"][:4] for r in rows])[y == 1]
    assert 0.3 <= (years == "2019").mean() <= 0.7
    # legit transactions of defrauded cards continue during their episodes
    assert ((y == 0) & np.isin(card, list(by_card))).sum() > 0.3 * len(rows) * len(by_card) / 150


def test_history_features_separate_fraud():
    """With each card's earlier rows as history, fraud rows stand out on burst and amount-vs-habit features."""
    rows = generator.generate_rows(
        rows=5000, cards=40, seed=4, start=date(2020, 1, 1), end=date(2020, 6, 30), fraud_rate=0.012
    )
    history: dict[str, list] = defaultdict(list)
    names = features.FEATURE_NAMES
    n24, ratio, y = [], [], []
    for r in rows:
        f = features.transaction_features(r, features.History.from_records(history[r["cc_num"]]))
        history[r["cc_num"]].append(features.history_record(r))
        n24.append(f[names.index("n_24h")])
        ratio.append(f[names.index("amt_to_mean_30d")])
        y.append(int(r["is_fraud"]))
    n24, ratio, y = np.array(n24), np.array(ratio), np.array(y)
    assert y.sum() == 60
    assert n24[y == 1].mean() > 1.5 * n24[y == 0].mean()
    assert ratio[y == 1].mean() > 2.5 * ratio[(y == 0) & (ratio >= 0)].mean()


# --- CLI and monthly split ------------------------------------------------------------------------


def test_cli_split_monthly_writes_one_file_per_month_with_the_same_data(tmp_path, capsys):
    args = ["--rows", "6000", "--cards", "40", "--start", "2019-11-20", "--end", "2020-02-10", "--seed", "3"]
    assert cli_main(["generate", *args, "--split-monthly", str(tmp_path / "months")]) == 0
    assert cli_main(["generate", *args, "--out", str(tmp_path / "all.csv")]) == 0
    files = sorted((tmp_path / "months").iterdir())
    assert [f.name for f in files] == [
        "transactions_2019-11.csv",
        "transactions_2019-12.csv",
        "transactions_2020-01.csv",
        "transactions_2020-02.csv",
    ]
    body = []
    for f in files:
        lines = f.read_text().splitlines(keepends=True)
        assert lines[0] == EXPECTED_HEADER + "\n"
        month = f.name[len("transactions_") : -len(".csv")]
        assert all(line.split(",", 2)[1].startswith(month) for line in lines[1:])
        body += lines[1:]
    assert "".join(body) == "".join((tmp_path / "all.csv").read_text().splitlines(keepends=True)[1:])
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 2 and "6,000 rows" in out[0] and "rows/s" in out[0]


def test_cli_writes_a_file_without_index(tmp_path):
    out = tmp_path / "sub" / "t.csv"
    assert cli_main(["generate", "--rows", "300", "--cards", "10", "--no-index", "--out", str(out)]) == 0
    header, rows = _parse(out.read_text())
    assert header == list(contract.COLUMN_NAMES) and len(rows) == 300


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    out = str(tmp_path / "x.csv")
    assert cli_main(["generate", "--start", "2020-02-01", "--end", "2020-01-01", "--out", out]) != 0
    assert "before" in capsys.readouterr().err
    for bad in (["--rows", "0"], ["--rows", "x"], ["--start", "2020-13-01"], ["--fraud-rate", "2"]):
        with pytest.raises(SystemExit) as exc:
            cli_main(["generate", *bad, "--out", out])
        assert exc.value.code != 0
    assert not Path(out).exists()


# --- streaming ------------------------------------------------------------------------------------


class _NullWriter(io.TextIOBase):
    def write(self, s: str) -> int:
        return len(s)


def _peak_bytes(rows: int) -> int:
    tracemalloc.start()
    try:
        generator.generate_csv(_NullWriter(), rows=rows, cards=200, seed=2)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_bounded_by_the_chunk_not_the_row_count(monkeypatch):
    # tracemalloc makes generation ~10x slower: a small chunk keeps rows >> chunk at a few seconds.
    monkeypatch.setattr(generator, "CHUNK_ROWS", 2000)
    generator.generate_csv(_NullWriter(), rows=10, cards=2)  # one-time tables out of the measurement
    small, large = _peak_bytes(8000), _peak_bytes(48_000)
    assert large < 1.3 * small, (small, large)
    assert large < 16 * 2**20, large


_RSS_SCRIPT = """
import resource, sys
from tools import generator
generator.generate_csv(sys.argv[2], rows=int(sys.argv[1]), cards=300, seed=1)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_process_memory_does_not_grow_with_rows(tmp_path):
    """Real process peak (default chunk size): 50k and 400k rows need the same memory."""

    def max_rss_kb(rows: int) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _RSS_SCRIPT, str(rows), str(tmp_path / f"{rows}.csv")],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[1],
        ).stdout
        return int(out.strip())

    small, large = max_rss_kb(50_000), max_rss_kb(400_000)
    assert large < small + 24 * 1024, (small, large)  # KB
