WINDOW_SECONDS = 60
KEY_PREFIX = "ratelimit"
# While Redis is down every request would log it; say so at most this often per process.
UNAVAILABLE_WARNING_INTERVAL_SECONDS = 60.0
