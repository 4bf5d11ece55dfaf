"""The header-list helpers the middlewares amend responses with."""

from typing import Any

from app.web.middleware.raw_headers import encode, header_value, set_headers


def start(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
    return {"type": "http.response.start", "status": 200, "headers": list(headers)}


def test_encode_gives_lower_case_names() -> None:
    assert encode({"X-Request-ID": "abc"}) == [(b"x-request-id", b"abc")]


def test_header_value_is_the_first_of_its_name() -> None:
    scope = {"headers": [(b"accept", b"*/*"), (b"x-request-id", b"one"), (b"x-request-id", b"two")]}

    assert header_value(scope, b"x-request-id") == b"one"
    assert header_value(scope, b"content-length") is None
    assert header_value({}, b"accept") is None


def test_replace_drops_every_header_of_the_same_name_and_keeps_the_others() -> None:
    message = start((b"content-type", b"application/json"), (b"retry-after", b"9"), (b"retry-after", b"8"))

    set_headers(message, [(b"retry-after", b"1"), (b"x-request-id", b"abc")], replace=True)

    assert sorted(message["headers"]) == [
        (b"content-type", b"application/json"),
        (b"retry-after", b"1"),
        (b"x-request-id", b"abc"),
    ]


def test_without_replace_a_response_keeps_its_own_value() -> None:
    message = start((b"x-frame-options", b"SAMEORIGIN"))

    set_headers(message, [(b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer")], replace=False)

    assert message["headers"] == [(b"x-frame-options", b"SAMEORIGIN"), (b"referrer-policy", b"no-referrer")]


def test_a_message_without_headers_gets_them() -> None:
    message: dict[str, Any] = {"type": "http.response.start", "status": 204}

    set_headers(message, [(b"x-request-id", b"abc")], replace=True)

    assert message["headers"] == [(b"x-request-id", b"abc")]
