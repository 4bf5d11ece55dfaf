"""Print a one-hour HS256 development token with every scope (used by `make token sub=NAME`).

The token is the last line of the output, so `TOKEN=$(make token sub=alice | tail -n1)` works.
"""

import argparse
import sys
from datetime import timedelta

from app.core.config import get_settings
from app.core.security import SCOPES, create_access_token

EXPIRES_IN = timedelta(hours=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.token", description=__doc__)
    parser.add_argument("--sub", default="dev-client", help="the token's subject: the client it authenticates")
    args = parser.parse_args(argv)

    settings = get_settings()
    if settings.JWT_JWKS_URL:
        print(
            f"JWT_JWKS_URL is set ({settings.JWT_JWKS_URL}): the API accepts only tokens from that identity "
            "provider, so a locally signed token would be refused. Get a token from the provider instead.",
            file=sys.stderr,
        )
        return 1

    token = create_access_token(settings, args.sub, SCOPES, EXPIRES_IN)
    print(
        f"HS256 token for sub={args.sub!r}, scopes={' '.join(SCOPES)!r}, expires in {EXPIRES_IN}"
        f" (APP_ENVIRONMENT={settings.APP_ENVIRONMENT}):",
        file=sys.stderr,
    )
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
