"""End-to-end smoke test of the Docker image and docker-compose.yml (`make compose-smoke`).

Builds the images, starts the whole stack under a project name of its own, waits for
/health/ready, calls the API with a token (GET /api/v1/me), and has the worker run the example task
(published to Redis, consumed by the worker container: its log says it succeeded). Then it removes
everything it created, volumes included, pass or fail. The exit status says which; every step prints
what it waits for and how long it took.

It also guards the image: its size (against IMAGE_BUDGET_MB), that it runs as a non-root user on a
read-only root filesystem, and that it contains no Poetry, pip or compiler.

Services are started in dependency order and their readiness is polled by the script itself
(db, redis, then migrate to completion, then api, then worker and beat), rather than left to
`depends_on` conditions, so any compose implementation that runs the file can run the test.

Nothing here depends on the machine's own services: the published host ports are free ones picked
at start, the settings file is generated (the repository's .env is neither read nor changed), and
the passwords and the JWT secret are random.

Environment:
  COMPOSE                  compose command (default: docker compose)
  ENGINE                   container CLI for image checks (default: from COMPOSE, e.g. docker)
  IMAGE_BUDGET_MB          fail when the layers the Dockerfile adds to its base exceed this
  STARTUP_BUDGET_SECONDS   fail when the API takes longer to answer /health/live after its start
  SMOKE_KEEP=1             leave the stack running on failure, to look at it (then `down -v` by hand)
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
# What the Dockerfile adds to its base (virtualenv, app, entrypoint). Measured at 181 MB;
# raise it deliberately when a dependency is worth it.
DEFAULT_IMAGE_BUDGET_MB = 200
DEFAULT_STARTUP_BUDGET_SECONDS = 20
APP_SERVICES = ("api", "worker", "beat")

_timings: list[tuple[str, float, str]] = []


class SmokeError(Exception):
    pass


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@contextmanager
def step(name: str, waits_for: str) -> Iterator[None]:
    say(f"==> {name}: {waits_for}")
    started = time.monotonic()
    status = "FAIL"
    try:
        yield
        status = "ok"
    finally:
        elapsed = time.monotonic() - started
        _timings.append((name, elapsed, status))
        say(f"    {status} ({elapsed:.1f} s)")


def poll(what: str, check: Callable[[], bool], timeout: float, interval: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise SmokeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Stack:
    def __init__(self, workdir: Path) -> None:
        self.compose = shlex.split(os.environ.get("COMPOSE") or "docker compose")
        default_engine = self.compose[0].removesuffix("-compose")
        self.engine = os.environ.get("ENGINE") or default_engine
        self.project = f"smoke{secrets.token_hex(4)}"
        self.log = workdir / "compose.log"
        self.settings_file = workdir / "settings.env"
        self.jwt_secret = secrets.token_urlsafe(48)
        self.ports = {name: free_port() for name in ("API_PORT", "DB_PORT", "REDIS_PORT")}
        self.image = os.environ.get("APP_IMAGE") or "fastapi-postgres-stack:local"
        db_password, redis_password = secrets.token_hex(16), secrets.token_hex(16)
        self.write_settings(
            {
                "APP_ENVIRONMENT": "local",
                "JWT_SECRET": self.jwt_secret,
                "DB_PASSWORD": db_password,
                "REDIS_PASSWORD": redis_password,
            }
        )
        # Interpolation of docker-compose.yml: set here, so that no .env can change it.
        self.env = {
            **os.environ,
            **{name: str(port) for name, port in self.ports.items()},
            "APP_ENV_FILE": str(self.settings_file),
            "APP_IMAGE": self.image,
            "DB_USERNAME": "postgres",
            "DB_NAME": "app",
            "DB_PASSWORD": db_password,
            "REDIS_PASSWORD": redis_password,
        }
        self.api = f"http://127.0.0.1:{self.ports['API_PORT']}"

    def write_settings(self, overrides: dict[str, str]) -> None:
        """.env.example with `overrides` applied: every other setting keeps its documented default."""
        lines: list[str] = []
        seen: set[str] = set()
        for line in (ROOT / ".env.example").read_text().splitlines():
            key = line.split("=", 1)[0].strip()
            if "=" in line and not line.lstrip().startswith("#") and key in overrides:
                line = f"{key}={overrides[key]}"
                seen.add(key)
            lines.append(line)
        lines += [f"{key}={value}" for key, value in overrides.items() if key not in seen]
        self.settings_file.write_text("\n".join(lines) + "\n")

    def run(self, args: Sequence[str], *, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        with self.log.open("a") as log:
            log.write(f"\n$ {shlex.join(args)}\n")
            log.flush()
            result = subprocess.run(  # noqa: S603 - our own commands
                list(args),
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
            )
            log.write(result.stdout)
        if check and result.returncode != 0:
            tail = "\n".join(result.stdout.strip().splitlines()[-30:])
            raise SmokeError(f"`{shlex.join(args)}` exited {result.returncode}:\n{tail}")
        return result

    def compose_cmd(self, *args: str) -> list[str]:
        return [*self.compose, "-f", str(COMPOSE_FILE), "-p", self.project, "--profile", "smoke", *args]

    def c(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return self.run(self.compose_cmd(*args), check=check, timeout=timeout)

    def exec_ok(self, service: str, *command: str) -> bool:
        return self.c("exec", "-T", service, *command, check=False, timeout=60).returncode == 0


def http_ok(url: str, status: int = 200) -> bool:
    try:
        return httpx.get(url, timeout=3).status_code == status
    except httpx.HTTPError:
        return False


def base_image() -> str:
    match = re.search(r"^ARG PYTHON_IMAGE=(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    if not match:
        raise SmokeError("Dockerfile has no ARG PYTHON_IMAGE=...")
    return match.group(1)


def image_size(stack: Stack, image: str) -> int:
    result = stack.run([stack.engine, "image", "inspect", "--format", "{{.Size}}", image])
    return int(result.stdout.strip().splitlines()[-1])


def check_image(stack: Stack) -> None:
    budget_mb = float(os.environ.get("IMAGE_BUDGET_MB") or DEFAULT_IMAGE_BUDGET_MB)
    total = image_size(stack, stack.image)
    # Some builders keep the base out of the engine's image list: then fetch it to weigh it.
    if stack.run([stack.engine, "image", "inspect", base_image()], check=False).returncode != 0:
        stack.run([stack.engine, "pull", base_image()], timeout=600)
    base = image_size(stack, base_image())
    added_mb, total_mb = (total - base) / 1e6, total / 1e6
    say(f"    image {stack.image}: {total_mb:.0f} MB, of which {added_mb:.0f} MB on top of {base_image()}")
    say(f"    budget for what the Dockerfile adds: {budget_mb:.0f} MB")
    if added_mb > budget_mb:
        raise SmokeError(f"the image adds {added_mb:.0f} MB to its base, over the {budget_mb:.0f} MB budget")
    user = stack.run([stack.engine, "image", "inspect", "--format", "{{.Config.User}}", stack.image]).stdout.strip()
    if user.split(":")[0] in ("", "0", "root"):
        raise SmokeError(f"the image runs as {user or 'root'}; it must name a non-root user")
    say(f"    runs as {user}")
    # A read-only root filesystem, no Poetry, no installer, no compiler.
    probe = """
        fail() { echo "$1" >&2; exit 1; }
        [ "$(id -u)" != 0 ] || fail "runs as root"
        for path in /app/probe /opt/venv/probe /probe; do
            touch "$path" 2>/dev/null && fail "$path is writable"
        done
        touch /tmp/probe || fail "/tmp is not writable"
        for tool in poetry gcc cc make; do
            command -v "$tool" >/dev/null && fail "$tool is in the image"
        done
        for path in /opt/venv/bin/pip /opt/poetry; do
            [ ! -e "$path" ] || fail "$path is in the image"
        done
        python -c "import uvicorn, celery"
    """
    read_only = ["--read-only", "--tmpfs", "/tmp"]  # noqa: S108 - a tmpfs inside the container
    stack.run([stack.engine, "run", "--rm", *read_only, "--entrypoint", "sh", stack.image, "-c", probe])
    say("    read-only root works (only /tmp written); no poetry, pip or compiler in the venv")


def mint_token(stack: Stack) -> str:
    """A development token signed with the stack's JWT_SECRET, by the project's own script."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "APP_ENVIRONMENT": "local",
        "JWT_SECRET": stack.jwt_secret,
        "JWT_JWKS_URL": "",
        "JWT_ISSUER": "",
        "JWT_AUDIENCE": "",
    }
    result = subprocess.run(  # noqa: S603 - our own script
        [sys.executable, "-m", "scripts.token", "--sub", f"smoke-{stack.project}"],
        cwd=stack.settings_file.parent,  # away from the repository's .env
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SmokeError(f"minting a token failed: {result.stderr.strip()}")
    return result.stdout.strip().splitlines()[-1]


def expect(response: httpx.Response, status: int) -> Any:
    if response.status_code != status:
        raise SmokeError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}, expected {status}: {response.text[:500]}"
        )
    return response.json() if response.content else None


def run_smoke(stack: Stack) -> None:
    say(f"compose: {shlex.join(stack.compose)}  engine: {stack.engine}  project: {stack.project}")
    say("host ports: " + ", ".join(f"{name}={port}" for name, port in stack.ports.items()))

    with step("build", "images of api (shared by worker, beat, migrate) and db"):
        stack.c("build", "api", "db", timeout=1800)

    with step("image", "size within budget, non-root, read-only root, no build tools"):
        check_image(stack)

    with step("db+redis", "PostgreSQL accepting connections and Redis answering PING"):
        stack.c("up", "-d", "--no-deps", "db", "redis")
        poll(
            "PostgreSQL (pg_isready)",
            lambda: stack.exec_ok(
                "db", "pg_isready", "--quiet", "--host", "127.0.0.1", "--username", "postgres", "--dbname", "app"
            ),
            timeout=90,
        )
        poll(
            "Redis (PING)",
            lambda: stack.exec_ok("redis", "sh", "-c", 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli ping | grep -q PONG'),
            timeout=30,
        )

    with step("migrate", "the migrate service (dbmate in the app image) to apply every migration and exit 0"):
        stack.c("run", "--rm", "--no-deps", "-T", "migrate", timeout=300)

    startup_budget = float(os.environ.get("STARTUP_BUDGET_SECONDS") or DEFAULT_STARTUP_BUDGET_SECONDS)
    with step("api", f"the api container to answer /health/live (budget {startup_budget:.0f} s)"):
        stack.c("up", "-d", "--no-deps", "api")
        started = time.monotonic()
        poll(
            "GET /health/live",
            lambda: http_ok(f"{stack.api}/health/live"),
            timeout=max(60, startup_budget * 2),
            interval=0.25,
        )
        startup = time.monotonic() - started
        say(f"    the API answered /health/live {startup:.1f} s after its container started")
        if startup > startup_budget:
            raise SmokeError(f"the API took {startup:.1f} s to start, over the {startup_budget:.0f} s budget")

    with step("workers", "worker and beat to start"):
        stack.c("up", "-d", "--no-deps", "worker", "beat")

    with step("ready", "GET /health/ready to answer 200 (PostgreSQL, Redis, schema)"):
        poll("GET /health/ready", lambda: http_ok(f"{stack.api}/health/ready"), timeout=60)
        for service in APP_SERVICES:
            if not stack.exec_ok(service, "sh", "-c", "! touch /app/probe 2>/dev/null && test $(id -u) != 0"):
                raise SmokeError(f"{service} runs as root or can write to its image")

    with step("request", "GET /api/v1/me with a token to answer 200"):
        token = mint_token(stack)
        with httpx.Client(base_url=stack.api, headers={"Authorization": f"Bearer {token}"}, timeout=10) as api:
            me = expect(api.get("/api/v1/me"), 200)
        say(f"    authenticated as {me['sub']}")

    with step("task", "the worker to run the example task published through Redis"):
        stack.c(
            "exec", "-T", "worker", "python", "-c",
            "from app.worker.main import celery_app; from app.worker.tasks import PING_DATABASE_TASK; "
            "print(celery_app.send_task(PING_DATABASE_TASK).id)",
        )  # fmt: skip
        poll(
            "the worker's log to say the task succeeded",
            lambda: (
                "housekeeping.ping_database" in stack.c("logs", "worker", check=False).stdout
                and "succeeded" in stack.c("logs", "worker", check=False).stdout
            ),
            timeout=60,
        )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="compose-smoke-") as tmp:
        stack = Stack(Path(tmp))
        started = time.monotonic()
        failure: str | None = None
        try:
            run_smoke(stack)
        except (SmokeError, subprocess.TimeoutExpired, httpx.HTTPError) as error:
            failure = str(error)
        except Exception as error:  # a bug here, or a verification error: report it, still tear down
            failure = f"{type(error).__name__}: {error}"
        finally:
            if failure:
                say(f"\nFAILED: {failure}\n--- last logs of the stack ---")
                logs = stack.c("logs", "--tail", "40", check=False, timeout=120).stdout
                say(logs.rstrip())
            if failure and os.environ.get("SMOKE_KEEP") == "1":
                say(f"SMOKE_KEEP=1: left running; remove with: {shlex.join(stack.compose_cmd('down', '-v'))}")
            else:
                with step("down", "every container, network and volume of the project to be removed"):
                    down = stack.c("down", "-v", "--remove-orphans", check=False, timeout=300)
                if down.returncode != 0:
                    _timings[-1] = (*_timings[-1][:2], "FAIL")
                    failure = failure or f"tearing down failed: {down.stdout.strip()[-500:]}"
        say("\nstep       seconds  result")
        for name, elapsed, status in _timings:
            say(f"{name:<10} {elapsed:7.1f}  {status}")
        say(f"total      {time.monotonic() - started:7.1f}  {'FAIL' if failure else 'PASS'}")
        return 1 if failure else 0


if __name__ == "__main__":
    sys.exit(main())
