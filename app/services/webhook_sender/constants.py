SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks prefix, not a secret
SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"
DEFAULT_USER_AGENT = "fastapi-postgres-stack-webhooks/1.0"

# 408 and 429 are the 4xx answers that say "later", not "never"; every 5xx is retryable too.
RETRYABLE_STATUS_CODES: frozenset[int] = frozenset({408, 429})
# Up to this much of a response body is read (so the connection can be reused) and thrown away.
MAX_RESPONSE_BODY_BYTES = 64 * 1024
MAX_ERROR_LENGTH = 200

# 2**62 seconds is far beyond any cap; the bound only keeps `base * 2**n` a finite float.
MAX_BACKOFF_EXPONENT = 62

# Cloud instance-metadata endpoints (AWS, GCP, Azure, ...); both are also caught by the range checks,
# but they are the classic SSRF target, so they are named explicitly.
METADATA_ADDRESSES: frozenset[str] = frozenset({"169.254.169.254", "fd00:ec2::254"})
