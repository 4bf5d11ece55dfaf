JWKS_FETCH_TIMEOUT_SECONDS = 5.0
JWKS_FETCH_MAX_TRIES = 3
# Exponential backoff between tries: random waits up to 0.2s, then 0.4s (full jitter).
JWKS_FETCH_BACKOFF_FACTOR = 0.2
# An unknown `kid` forces a refetch (key rotation), but at most this often, so that tokens with
# made-up key ids cannot turn the API into a load generator against the identity provider.
JWKS_MIN_REFRESH_INTERVAL_SECONDS = 30.0
