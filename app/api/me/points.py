from fastapi import APIRouter

from app.api.deps import CurrentClient
from app.api.routing import ApiRoute
from app.core.security import Principal

router = APIRouter(prefix="/me", tags=["auth"], route_class=ApiRoute)


@router.get("")
async def read_me(client: CurrentClient) -> Principal:
    """The authenticated client: the token's subject and its scopes."""
    return client
