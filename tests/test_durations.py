"""Durations: "500ms", "90s", "10m", "2h", "7d", "1w"."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deploysafe.config import _serialize_duration
from deploysafe.durations import format_duration, parse_duration

UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("90s", 90), ("10m", 600), ("2h", 7200), ("7d", 604800), ("1w", 604800), ("1.5s", 1.5), (" 15m ", 900)],
)
def test_parse_known(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["7 days", "7", "d7", "10 m", "-5s", "1y", "", "5sec", "1e3s", "ms"])
def test_parse_rejects_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_duration(text)
    assert str(e.value) == (
        f"{text!r} is not a duration; write a number and a unit with no space: "
        "'500ms', '90s', '10m', '2h', '7d' or '1w'"
    )


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="expected a duration string like '90s', got 90"):
        parse_duration(90)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=10**7), st.sampled_from(sorted(UNITS)))
@settings(max_examples=200, deadline=None)
def test_parse_any_integer_and_unit(n: int, unit: str) -> None:
    assert parse_duration(f"{n}{unit}") == pytest.approx(n * UNITS[unit])


@given(st.integers(min_value=0, max_value=10**9))
@settings(max_examples=300, deadline=None)
def test_config_serialisation_round_trips_whole_milliseconds(ms: int) -> None:
    seconds = ms / 1000
    text = _serialize_duration(seconds)
    assert parse_duration(text) == pytest.approx(seconds)
    # The largest unit that divides evenly is used, so "7d" stays "7d" in `config show`.
    assert text[-1] in "wdhms"


@pytest.mark.parametrize(("seconds", "text"), [(604800, "1w"), (86400 * 30, "30d"), (900, "15m"), (90, "90s"), (0.5, "500ms"), (3600, "1h")])
def test_config_serialisation_exact(seconds: float, text: str) -> None:
    assert _serialize_duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(-1, "0.00s"), (0, "0.00s"), (0.421, "0.42s"), (9.999, "10.00s"), (12.34, "12.3s"), (245, "4m05s"), (7380, "2h03m"), (273600, "3d04h")],
)
def test_format_known(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.floats(min_value=0, max_value=10**8, allow_nan=False))
@settings(max_examples=300, deadline=None)
def test_format_is_short_and_close(seconds: float) -> None:
    text = format_duration(seconds)
    assert len(text) <= 9
    # Read it back: it is within the rounding of its smallest unit.
    if text.endswith("s") and "m" not in text:
        back = float(text[:-1])
        assert abs(back - seconds) <= 0.05 + 1e-9
    elif text.endswith("s"):
        m, s = text[:-1].split("m")
        assert abs(int(m) * 60 + int(s) - seconds) <= 0.5 + 1e-9
    elif text.endswith("m"):
        h, m = text[:-1].split("h")
        assert 0 <= seconds - (int(h) * 3600 + int(m) * 60) < 60.5
    else:
        d, h = text[:-1].split("d")
        assert 0 <= seconds - (int(d) * 86400 + int(h) * 3600) < 3600.5
