"""A local multi-replica stack: a private PostgreSQL server, N `elser-server` replicas sharing it as their endpoint
store, and Debian's nginx in front as the HTTP/2 load balancer (`grpc_pass` for gRPC, `proxy_pass` for the ES REST
API), which is what a mesh sidecar does on Kubernetes.

`make cluster` runs it in the foreground (Ctrl-C stops everything and removes it); the tests use the same classes.
PostgreSQL and nginx come from Debian's `postgresql` and `nginx` packages (`make system-packages`). The PostgreSQL
server refuses to run as root, so as root its commands run as the `postgres` user the package creates.
"""

from __future__ import annotations

import argparse
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc
from psycopg import sql

SUPERUSER = "postgres"
NGINX = "/usr/sbin/nginx"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
        raise RuntimeError("PostgreSQL server binaries not found: `make system-packages` installs them")
    return Path(initdb).parent


class PostgresServer:
    """A private cluster in a fresh temporary directory, listening on a free loopback port. TCP logins need a
    password (scram-sha-256), as in a real deployment; the Unix socket sits in the cluster's own directory."""

    def __init__(self) -> None:
        self.bindir = server_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="elser-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.password = secrets.token_hex(12)
        self.port = 0
        self._as_postgres = os.geteuid() == 0
        password_file = self.root / "superuser-password"
        password_file.write_text(self.password)
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            for path in (self.root, password_file):
                os.chown(path, entry.pw_uid, entry.pw_gid)
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
            raise RuntimeError(f"{tool} failed ({result.returncode}):\n{result.stdout}{result.stderr}\n{log}")

    def start(self) -> None:
        """Start on a free port (the same one again after a stop) and wait until it accepts connections."""
        for _ in range(3):
            self.port = self.port or free_port()
            options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
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
            except RuntimeError:
                if "could not bind" not in self.log.read_text(errors="replace"):
                    raise
                self.port = 0  # taken by someone else meanwhile: another free one
        raise RuntimeError(f"no free port for PostgreSQL:\n{self.log.read_text(errors='replace')}")

    def stop(self) -> None:
        """Fast shutdown: clients are disconnected at once (what a restart or a failover does to them)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, user: str = SUPERUSER, password: str | None = None, dbname: str = "postgres") -> str:
        """A libpq URL; `password=""` leaves the password out (it then comes from a password file)."""
        secret = "" if password == "" else f":{password or self.password}"
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{dbname}"

    def execute(self, statement: sql.Composed | sql.SQL | str, dbname: str = "postgres") -> None:
        with psycopg.connect(self.url(dbname=dbname), autocommit=True) as conn:
            conn.execute(statement.encode() if isinstance(statement, str) else statement)

    def create_database(self, name: str, owner: str, password: str) -> str:
        """A database owned by the login role `owner` (created when missing); its URL without the password."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,)).fetchone() is None:
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(owner), password)
                )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner))
            )
        return self.url(owner, "", name)


class Replica:
    """One `elser-server` process on free loopback ports; its output goes to `<dir>/<name>.log`."""

    def __init__(self, name: str, directory: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log = directory / f"{name}.log"
        self.grpc_port, self.http_port, self.metrics_port = free_port(), free_port(), free_port()
        self.env = {
            **os.environ,
            "ELSER_HOST": "127.0.0.1",
            "ELSER_GRPC_PORT": str(self.grpc_port),
            "ELSER_HTTP_PORT": str(self.http_port),
            "ELSER_METRICS_PORT": str(self.metrics_port),
            "ELSER_DATA_DIR": str(directory / name),
            "ELSER_REPLICA_NAME": name,
            **env,
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "elser_server"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.target = f"127.0.0.1:{self.grpc_port}"

    def wait_serving(self, service: str = "", timeout_s: float = 120) -> None:
        end = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"replica {self.name} exited with {self.proc.returncode}: see {self.log}"
                    )
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.05)
        raise RuntimeError(f"replica {self.name} not serving {service!r} after {timeout_s}s: see {self.log}")

    def terminate(self, timeout_s: float = 120) -> int:
        """SIGTERM: the graceful drain; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


NGINX_CONF = """\
# Generated by deploy/local/elser_cluster.py: nginx as the load balancer of {count} replicas.
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
{user}
events {{
    worker_connections 1024;
}}

http {{
    access_log {dir}/nginx-access.log;
    client_body_temp_path {dir}/nginx-tmp/body;
    proxy_temp_path {dir}/nginx-tmp/proxy;
    fastcgi_temp_path {dir}/nginx-tmp/fastcgi;
    uwsgi_temp_path {dir}/nginx-tmp/uwsgi;
    scgi_temp_path {dir}/nginx-tmp/scgi;
    client_max_body_size 32m;

    # gRPC: HTTP/2 to the replicas, each call balanced on its own (not each client connection). A draining
    # replica is marked down by a reload as soon as its health turns NOT_SERVING; one that refuses connections
    # anyway (killed) is skipped for {fail_timeout} and the call goes to the next one. Calls already sent are never
    # repeated by nginx (the client's retry policy decides).
    upstream elser_grpc {{
{grpc_servers}
        keepalive 32;
    }}
    upstream elser_http {{
{http_servers}
        keepalive 32;
    }}

    server {{
        listen 127.0.0.1:{grpc_port} http2;
        location / {{
            grpc_pass grpc://elser_grpc;
            grpc_read_timeout 1h;   # WatchDeployment and InferStream are long-lived streams
            grpc_send_timeout 1h;
            grpc_next_upstream error timeout;
        }}
    }}

    server {{
        listen 127.0.0.1:{http_port};
        location / {{
            proxy_pass http://elser_http;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 10m;  # a PUT waits for a deployment (?timeout=)
            proxy_buffering off;
            # Idempotent requests move on after a connection error or a draining replica's 503; POST (inference)
            # is never repeated by nginx: the official clients retry 502/503/504 themselves.
            proxy_next_upstream error timeout http_502 http_503;
        }}
    }}
}}
"""


class Nginx:
    """nginx in the foreground with a generated configuration, in `directory`. `route()` takes replicas out of
    (and back into) rotation with a graceful reload, as a Service's endpoints follow its pods' readiness."""

    def __init__(
        self,
        directory: Path,
        replicas: list[Replica],
        grpc_port: int,
        http_port: int,
        fail_timeout_s: int = 5,
    ) -> None:
        if not Path(NGINX).exists():
            raise RuntimeError(f"{NGINX} not found: `make system-packages` installs Debian's nginx")
        self.directory = directory
        self.replicas = replicas
        self.grpc_port, self.http_port = grpc_port, http_port
        self.fail_timeout_s = fail_timeout_s
        (directory / "nginx-tmp").mkdir(parents=True, exist_ok=True)
        self.config = directory / "nginx.conf"
        # -e: nginx's own start-up messages go here too, not to the system's /var/log/nginx.
        self._command = [NGINX, "-e", str(directory / "nginx-error.log"), "-c", str(self.config)]
        self._write_config({r.name for r in replicas})
        with (directory / "nginx.out").open("ab") as out:
            self.proc = subprocess.Popen(self._command, stdout=out, stderr=subprocess.STDOUT)
        self._wait_listening()

    def _write_config(self, serving: set[str]) -> None:
        def servers(address: Callable[[Replica], str]) -> str:
            return "\n".join(
                f"        server {address(r)} max_fails=1 fail_timeout={self.fail_timeout_s}s"
                + ("" if r.name in serving else " down")
                + ";"
                for r in self.replicas
            )

        self.config.write_text(
            NGINX_CONF.format(
                count=len(self.replicas),
                dir=self.directory,
                user="user root;" if os.geteuid() == 0 else "",
                fail_timeout=f"{self.fail_timeout_s}s",
                grpc_servers=servers(lambda r: r.target),
                http_servers=servers(lambda r: f"127.0.0.1:{r.http_port}"),
                grpc_port=self.grpc_port,
                http_port=self.http_port,
            )
        )
        check = subprocess.run([*self._command, "-t"], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"nginx refused its configuration:\n{check.stderr}")

    def route(self, serving: set[str]) -> None:
        """Send new calls only to the replicas named in `serving` (to all when none is); calls in flight
        finish where they are (nginx reloads gracefully)."""
        self._write_config(serving or {r.name for r in self.replicas})
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def _wait_listening(self, timeout_s: float = 30) -> None:
        end = time.monotonic() + timeout_s
        for port in (self.grpc_port, self.http_port):
            while True:
                if self.proc.poll() is not None:
                    log = (self.directory / "nginx-error.log").read_text(errors="replace")
                    raise RuntimeError(f"nginx exited with {self.proc.returncode}:\n{log}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > end:
                        raise RuntimeError(f"nginx is not listening on {port}") from None
                    time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: finish the requests in flight
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Rotation:
    """Keeps nginx's upstreams equal to the replicas that are serving: one gRPC health `Watch` per replica (the
    liveness service "", which turns NOT_SERVING the moment a replica starts draining on SIGTERM). nginx has no
    active health checks, so without this it would keep sending new calls to a draining replica until its
    listener closes, and calls caught in that moment would wait out the replica's grace period."""

    def __init__(self, nginx: Nginx) -> None:
        self._nginx = nginx
        self._lock = threading.Lock()
        self._serving = {r.name for r in nginx.replicas}
        self._stopped = threading.Event()
        self._threads = [
            threading.Thread(target=self._watch, args=(r,), name=f"rotation-{r.name}", daemon=True)
            for r in nginx.replicas
        ]
        for thread in self._threads:
            thread.start()

    def _set(self, name: str, serving: bool) -> None:
        with self._lock:
            changed = set(self._serving)
            if serving:
                changed.add(name)
            else:
                changed.discard(name)
            if changed != self._serving and not self._stopped.is_set():
                self._serving = changed
                self._nginx.route(changed)

    def _watch(self, replica: Replica) -> None:
        """Until the replica stops serving. Then the stream is closed: a draining replica never serves again,
        and an open health Watch would hold its shutdown for the whole grace period."""
        with grpc.insecure_channel(replica.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                for reply in stub.Watch(health_pb2.HealthCheckRequest(service="")):
                    if reply.status != health_pb2.HealthCheckResponse.SERVING:
                        break
                    self._set(replica.name, True)
            except grpc.RpcError:
                pass
        self._set(replica.name, False)

    def stop(self) -> None:
        self._stopped.set()


class LocalCluster:
    """PostgreSQL + `count` replicas + nginx. `grpc_port`/`http_port` 0: free ports (tests)."""

    def __init__(
        self,
        directory: Path,
        *,
        count: int = 3,
        grpc_port: int = 0,
        http_port: int = 0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.count = count
        self.grpc_port = grpc_port or free_port()
        self.http_port = http_port or free_port()
        self.env = env or {}
        self.postgres: PostgresServer | None = None
        self.replicas: list[Replica] = []
        self.nginx: Nginx | None = None
        self.rotation: Rotation | None = None
        self.password_file = directory / "store-password"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self.postgres = PostgresServer()
            self.postgres.start()
            password = secrets.token_hex(12)
            self.password_file.write_text(password + "\n")
            self.password_file.chmod(0o600)
            store_url = self.postgres.create_database("elser", "elser", password)
            env = {
                "ELSER_STORE_URL": store_url,
                "ELSER_STORE_PASSWORD_FILE": str(self.password_file),
                **self.env,
            }
            self.replicas = [Replica(f"replica-{i + 1}", self.directory, env) for i in range(self.count)]
            for replica in self.replicas:
                replica.wait_serving()
            self.nginx = Nginx(self.directory, self.replicas, self.grpc_port, self.http_port)
            self.rotation = Rotation(self.nginx)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM every replica (each drains), then nginx, then PostgreSQL."""
        if self.rotation is not None:
            self.rotation.stop()
        for replica in self.replicas:
            if replica.proc.poll() is None:
                replica.proc.send_signal(signal.SIGTERM)
        for replica in self.replicas:
            try:
                replica.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                replica.kill()
        if self.nginx is not None:
            self.nginx.stop()
        if self.postgres is not None:
            self.postgres.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--grpc-port", type=int, default=50051, help="nginx's gRPC port")
    parser.add_argument("--http-port", type=int, default=9200, help="nginx's ES REST port")
    parser.add_argument("--dir", type=Path, default=Path(".cluster"), help="logs, configuration, data")
    args = parser.parse_args()
    directory = args.dir.resolve()
    cluster = LocalCluster(directory, count=args.replicas, grpc_port=args.grpc_port, http_port=args.http_port)
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    cluster.start()
    print(
        f"{args.replicas} replicas behind nginx: gRPC {cluster.grpc_target}, ES REST {cluster.http_url}\n"
        f"store: {cluster.postgres.url('elser', '', 'elser') if cluster.postgres else ''} "
        f"(password in {cluster.password_file})\n"
        + "".join(
            f"  {r.name}: gRPC {r.target}, REST :{r.http_port}, log {r.log}\n" for r in cluster.replicas
        )
        + "Ctrl-C stops everything.",
        flush=True,
    )
    try:
        while not stop and all(r.proc.poll() is None for r in cluster.replicas):
            time.sleep(0.2)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
