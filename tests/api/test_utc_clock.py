"""The prediction log's timestamps: ``UtcClock`` writes what ``datetime.isoformat`` writes."""

import random
import time
from datetime import UTC, datetime, timedelta

from api.scoring import UtcClock

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _expected(ns: int) -> str:
    return (_EPOCH + timedelta(microseconds=ns // 1000)).isoformat(timespec="milliseconds")


def test_same_text_as_datetime_isoformat_across_seconds_and_days():
    clock = UtcClock()
    rng = random.Random(7)
    now = time.time_ns()
    times = [now + rng.randrange(-(10**9), 10**9) for _ in range(2000)]
    day_end = 1_735_689_599_999_999_999  # 2024-12-31T23:59:59.999999999Z, then the new year
    times += [day_end - 1_000_000, day_end, day_end + 1, 0, 999_999, 1_000_000]
    for ns in times:  # in random order: the cached second changes back and forth
        assert clock.now_iso(ns) == _expected(ns), ns


def test_default_is_the_current_time():
    before = datetime.now(UTC).isoformat(timespec="milliseconds")
    got = UtcClock().now_iso()
    after = datetime.now(UTC).isoformat(timespec="milliseconds")
    assert before <= got <= after
