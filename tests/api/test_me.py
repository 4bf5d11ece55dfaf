import httpx


async def test_me_returns_the_authenticated_client(client: httpx.AsyncClient, auth_headers: dict[str, str]) -> None:
    response = await client.get("/api/v1/me", headers=auth_headers)
    assert response.status_code == 200
    body = response.json()
    assert body["sub"] == "client-a"
    assert "messages:write" in body["scopes"]


async def test_me_without_token_is_401_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["request_id"] == response.headers["x-request-id"]
