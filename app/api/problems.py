"""The error responses the versioned API declares in OpenAPI, all `application/problem+json`.

Every route under /api/v1 gets API_ERRORS from its router; a route that can answer another problem
adds it with `responses=`, e.g. `@router.post("", responses=IDEMPOTENCY_CONFLICT)`.
"""

from app.web.problem import problem_responses

# 401/403 from authentication and scopes, 404 (an unknown id), 413 (body limit), 422 (validation),
# 429 (rate limit), 503 (the rate limiter failing closed, or the identity provider's keys unavailable).
API_ERRORS = problem_responses(401, 403, 404, 413, 422, 429, 503)

IDEMPOTENCY_CONFLICT = problem_responses(
    409, description="The Idempotency-Key was already used with a different request body."
)
REDELIVERY_CONFLICT = problem_responses(
    409, description="The message is still being delivered, or has no failed delivery to re-send."
)
WEBHOOK_LIMIT_CONFLICT = problem_responses(
    409, description="The client already has WEBHOOK_MAX_PER_CLIENT webhooks; delete one to register another."
)
