from datetime import timedelta
from email.utils import format_datetime

import pytest

from app.api.messaging.delivery_policy import retry_delay
from app.clients.webhooks.outcome import parse_retry_after
from app.core.time import utcnow

SAMPLES = 500


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 10.0)])
def test_backoff_is_full_jitter_up_to_the_exponential_ceiling(attempt: int, ceiling: float) -> None:
    delays = [retry_delay(attempt, 0.5, 10.0, None, 60.0) for _ in range(SAMPLES)]

    assert all(0.0 <= delay <= ceiling for delay in delays)
    # Full jitter spreads over the whole range (a miss here has probability 2**-500).
    assert min(delays) < ceiling / 2 < max(delays)


def test_backoff_never_exceeds_the_cap_even_for_huge_attempt_numbers() -> None:
    delays = [retry_delay(10_000, 1.0, 30.0, None, 60.0) for _ in range(SAMPLES)]

    assert all(0.0 <= delay <= 30.0 for delay in delays)
    assert max(delays) > 15.0


@pytest.mark.parametrize(
    ("retry_after", "expected"), [(7.0, 7.0), (0.0, 0.0), (3600.0, 60.0), (60.0, 60.0), (-5.0, 0.0)]
)
def test_retry_after_is_honoured_up_to_its_cap(retry_after: float, expected: float) -> None:
    assert retry_delay(1, 0.5, 10.0, retry_after, 60.0) == expected
    assert retry_delay(8, 0.5, 10.0, retry_after, 60.0) == expected


def test_attempts_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        retry_delay(0, 0.5, 10.0, None, 60.0)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: retry now
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


@pytest.mark.parametrize("usegmt", [True, False])  # "... GMT" and "... -0000" are both HTTP-dates
def test_parse_retry_after_http_date_in_the_future(usegmt: bool) -> None:
    header = format_datetime(utcnow() + timedelta(seconds=90), usegmt=usegmt)
    if not usegmt:
        header = header.replace("+0000", "-0000")

    seconds = parse_retry_after(header)

    assert seconds is not None
    assert 88.0 <= seconds <= 90.0
