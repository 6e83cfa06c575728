"""Content locations: any text gives a normalised location or a clear LocationError, and normalising twice
changes nothing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.notices.locations import LocationError, normalise, normalise_locations


@pytest.mark.parametrize(("given_", "expected"), [
    ("HTTPS://WWW.Instagram.com:443/p/Abc/?igshid=xx&utm_source=a#frag", "https://www.instagram.com/p/Abc/"),
    ("https://x.com/u/status/1?s=20", "https://x.com/u/status/1?s=20"),
    ("http://example.org:8080/a b", "http://example.org:8080/a%20b"),
    ("https://www.tiktok.com", "https://www.tiktok.com/"),
    ("  @fake.account_1  ", "@fake.account_1"),
])  # fmt: skip
def test_normalised(given_: str, expected: str) -> None:
    assert normalise(given_) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "www.x.com/a",
        "@bad handle",
        "ftp://x.com/a",
        "https://localhost/a",
        "https://user:pw@x.com/",
        "javascript://x.com/%0aalert(1)",
        "https://x.com:99999/",
    ],
)
def test_refused(bad: str) -> None:
    with pytest.raises(LocationError):
        normalise(bad)


def test_duplicates_are_dropped_and_the_list_is_bounded() -> None:
    assert normalise_locations(["https://X.com/a#1", "https://x.com/a"]) == ("https://x.com/a",)
    with pytest.raises(LocationError):
        normalise_locations([])
    with pytest.raises(LocationError):
        normalise_locations(["@a"] * 21)


@given(st.text(max_size=300))
def test_any_text_is_a_location_or_a_clear_error(text: str) -> None:
    try:
        found = normalise(text)
    except LocationError as exc:
        assert str(exc).startswith("location 1")
        return
    assert normalise(found) == found


URLS = r"https?://[a-zA-Z0-9-]{1,20}\.[a-z]{2,6}(/[\w .~%-]{0,30}){0,3}(\?[\w=&%]{0,30})?"


@given(st.from_regex(URLS, fullmatch=True))
def test_urls_normalise_idempotently(url: str) -> None:
    found = normalise(url)
    assert normalise(found) == found and found.startswith(("http://", "https://"))
