"""Where the messages' routes stand among the API's (app/api/router.py)."""

from app.api.messaging.points import router
from app.api.router import DOMAIN_ROUTERS


def test_the_messages_router_is_matched_first() -> None:
    # Clients send and read messages all day; every route tried before the right one costs each request.
    assert DOMAIN_ROUTERS[0] is router
