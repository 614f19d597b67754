"""A private PostgreSQL server for tests: Debian's server binaries (`make test` installs the `postgresql` package), a
cluster in a fresh temporary directory on a free loopback port, stopped and removed afterwards.

The server refuses to run as root, so as root (CI) its commands run as the `postgres` user the package creates.
TCP connections need a password (scram-sha-256), as a real deployment would; the Unix socket sits in the cluster's
own directory.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql
from serverprocess import free_port

SUPERUSER = "postgres"


def server_bindir() -> Path:
    """The newest installed PostgreSQL server's bin directory (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name),
        reverse=True,
    )
    if found:
        return found[0].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise AssertionError(
            "PostgreSQL server binaries not found: `make test` installs them (apt-get install postgresql)"
        )
    return Path(initdb).parent


class PostgresServer:
    def __init__(self) -> None:
        self.bindir = server_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="elser-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.password = secrets.token_hex(12)
        self.port = 0
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        password_file = self.root / "superuser-password"
        password_file.write_text(self.password)
        if self._as_postgres:
            os.chown(password_file, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={password_file}",
            "--no-sync",
            "--encoding=UTF8",
            "--locale=C",
        )
        password_file.unlink()

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise AssertionError(
                f"{tool} failed ({result.returncode}):\n{result.stdout}{result.stderr}\n{log}"
            )

    def start(self) -> None:
        """Start on a free port (the same one again after a stop) and wait until it accepts connections."""
        for _ in range(3):
            self.port = self.port or free_port()
            options = (
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=200"
            )
            try:
                self._run(
                    "pg_ctl",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    options,
                    "start",
                )
                return
            except AssertionError:
                if "could not bind" not in self.log.read_text(errors="replace"):
                    raise
                self.port = 0  # taken by someone else meanwhile: another free one
        raise AssertionError(f"no free port for PostgreSQL:\n{self.log.read_text(errors='replace')}")

    def stop(self) -> None:
        """Fast shutdown: clients are disconnected at once (what a restart or a failover does to them)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, user: str = SUPERUSER, password: str | None = None, dbname: str = "postgres") -> str:
        secret = "" if password == "" else f":{password or self.password}"
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{dbname}"

    def execute(self, statement: sql.Composable | str, dbname: str = "postgres") -> None:
        with psycopg.connect(self.url(dbname=dbname), autocommit=True) as conn:
            conn.execute(statement if isinstance(statement, sql.Composable) else statement.encode())

    def create_database(self, name: str, owner: str, password: str) -> str:
        """A database owned by a login role `owner` (created when missing); its URL without the password."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,)).fetchone()
            if exists is None:
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(owner), password)
                )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner))
            )
        return self.url(owner, "", name)
