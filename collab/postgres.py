"""A private PostgreSQL cluster for the Dagster instance's production profile, on loopback only.

The binaries are Debian's ``postgresql`` package (``make postgres`` installs it). The cluster lives in
one directory: ``data/`` (the cluster, owned by whoever runs the server), ``password`` (0600, generated
at initialisation), ``url`` (0600, the connection URL while it runs), ``port`` and ``server.log``. The server
listens on 127.0.0.1 only, on the port of its last start (a free one if that is taken), with no Unix socket, and password authentication (scram-sha-256) for every connection.
PostgreSQL refuses to run as root, so under root (CI, containers) the cluster belongs to the
``postgres`` OS user the package creates; the directory is then made traversable but not listable.
The server runs detached; ``stop`` ends it by its own pid: SIGINT (PostgreSQL's fast shutdown), then
SIGKILL after a timeout.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psycopg2

from collab.bucket import free_port, port_is_free
from collab.workspace import POSTGRES_URL_VARIABLE

_SUPERUSER = "collab"
_DATABASE = "dagster"
_DEBIAN_BINARIES = Path("/usr/lib/postgresql")
_SQLALCHEMY_SCHEME = "postgresql+psycopg2://"


class PostgresServerError(Exception):
    """The PostgreSQL server could not be found, started or stopped."""


def postgres_binaries() -> Path:
    """The directory holding ``initdb`` and ``postgres``: Debian's newest version, or the one on PATH."""
    versions = sorted(
        (p for p in _DEBIAN_BINARIES.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if versions:
        return versions[-1]
    found = shutil.which("initdb")
    if found is None:
        raise PostgresServerError("PostgreSQL is not installed: run `make postgres` (Debian's `postgresql` package)")
    return Path(found).resolve().parent


class LocalPostgres:
    """One PostgreSQL cluster in ``directory``, holding the Dagster instance's runs, events and schedules."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.data = self.directory / "data"
        self.password_file = self.directory / "password"
        self.url_file = self.directory / "url"
        self.log = self.directory / "server.log"
        self.port_file = self.directory / "port"

    @property
    def _owner(self) -> pwd.struct_passwd | None:
        """The OS user the server runs as when we are root; ``None`` runs it as ourselves."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError as error:
            raise PostgresServerError("running as root needs the `postgres` OS user: run `make postgres`") from error

    def _command(self, *args: str) -> list[str]:
        owner = self._owner
        return ["runuser", "-u", owner.pw_name, "--", *args] if owner else list(args)

    def _initialise(self) -> None:
        password = secrets.token_urlsafe(24)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(mode=0o700)
        owner = self._owner
        password_file = self.directory / "initdb.password"
        password_file.touch(mode=0o600)
        password_file.write_text(password, encoding="utf-8")
        if owner:
            # The server's user must reach data/ and read the password once; nothing else here is theirs.
            self.directory.chmod(0o711)
            for path in (self.data, password_file):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        try:
            subprocess.run(
                self._command(
                    str(postgres_binaries() / "initdb"),
                    f"--pgdata={self.data}",
                    f"--username={_SUPERUSER}",
                    f"--pwfile={password_file}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-instructions",
                ),
                check=True,
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.CalledProcessError as error:
            raise PostgresServerError(f"initdb failed: {error.stderr.strip()}") from error
        finally:
            password_file.unlink()
        self.password_file.touch(mode=0o600)
        self.password_file.write_text(password, encoding="utf-8")

    def pid(self) -> int | None:
        """The running server's pid, from its own ``postmaster.pid``; ``None`` when it is not running."""
        try:
            pid = int((self.data / "postmaster.pid").read_text(encoding="utf-8").splitlines()[0])
        except (FileNotFoundError, PermissionError, IndexError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    def start(self, timeout: float = 60.0) -> str:
        """Start the server (initialising the cluster first if new) and return its connection URL."""
        if self.pid() is not None:
            return self.url()
        if not self.data.exists():
            self._initialise()
        password, port = self.password_file.read_text(encoding="utf-8"), self._port()
        with self.log.open("ab") as log:
            server = subprocess.Popen(
                self._command(
                    str(postgres_binaries() / "postgres"),
                    "-D",
                    str(self.data),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"port={port}",
                    "-c",
                    "unix_socket_directories=",
                ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        url = f"postgresql://{_SUPERUSER}:{password}@127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._create_database(url)
                break
            except psycopg2.OperationalError as error:
                if server.poll() is not None:
                    log_tail = self.log.read_text(encoding="utf-8", errors="replace")[-2000:]
                    raise PostgresServerError(f"PostgreSQL exited at start:\n{log_tail}") from error
                if time.monotonic() > deadline:
                    raise PostgresServerError(f"PostgreSQL did not answer on port {port}: {error}") from error
                time.sleep(0.2)
        self.url_file.touch(mode=0o600)
        # SQLAlchemy's form, naming the driver dagster-postgres brings (a bare postgresql:// means psycopg 3).
        self.url_file.write_text(f"{url.replace('postgresql://', _SQLALCHEMY_SCHEME, 1)}/{_DATABASE}", encoding="utf-8")
        return self.url()

    def _port(self) -> int:
        """The port of the last start if it is free, so the URL the daemon, the webserver and every shell were given
        stays right across a restart (an operator's trial: a new port each start, the daemon retrying the old one
        for good); a free one otherwise, kept for the next start."""
        kept = self.port_file.read_text(encoding="utf-8").strip() if self.port_file.exists() else ""
        port = int(kept) if kept.isdigit() and port_is_free(int(kept)) else free_port()
        self.port_file.write_text(str(port), encoding="utf-8")
        return port

    def connect(self) -> psycopg2.extensions.connection:
        """A direct connection to the instance's database, for looking at what Dagster stored."""
        return psycopg2.connect(self.url().replace(_SQLALCHEMY_SCHEME, "postgresql://", 1))

    @staticmethod
    def _create_database(url: str) -> None:
        con = psycopg2.connect(f"{url}/postgres", connect_timeout=2)
        try:
            con.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with con.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (_DATABASE,))
                if cursor.fetchone() is None:
                    cursor.execute(f"CREATE DATABASE {_DATABASE}")
        finally:
            con.close()

    def url(self) -> str:
        """The instance's database as an SQLAlchemy URL (what ``storage: postgres: postgres_url`` takes)."""
        return self.url_file.read_text(encoding="utf-8").strip()

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown by the server's own pid; SIGKILL if it has not gone after ``timeout`` seconds."""
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while self.pid() == pid:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    """``python -m collab.postgres start|stop DIRECTORY``: what ``make postgres`` and ``make postgres-stop`` run."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m collab.postgres", description=main.__doc__)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    server = LocalPostgres(args.directory)
    if args.action == "start":
        server.start()
        print(f"PostgreSQL runs as pid {server.pid()}; its URL is in {server.url_file}. For the instance:")
        print(f'  export {POSTGRES_URL_VARIABLE}="$(cat {server.url_file})"')
    else:
        server.stop()
        print("PostgreSQL stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
