"""`elser-healthcheck`: exit 0 only if gRPC health reports SERVING.

Used by the image's HEALTHCHECK and as a Kubernetes exec probe where native `grpc:` probes cannot work (they
speak plaintext only, so a TLS or mTLS listener needs this, as does health protected by API keys).

By default the probe connects the way the server's own `ELSER_*` environment says it listens, so a container
that configures the server once through the environment needs no probe arguments:

- address: `ELSER_HOST` (`localhost` when it is a wildcard or unset) and `ELSER_GRPC_PORT`;
- TLS when `ELSER_TLS_CERT_FILE` is set; the server certificate is verified against `ELSER_HEALTHCHECK_CA_FILE`,
  else against `ELSER_TLS_CERT_FILE` itself (the probe pins the server's own certificate), with the name in
  `ELSER_HEALTHCHECK_TLS_SERVER_NAME` when the certificate is not for the address host;
- mTLS client certificate: `ELSER_HEALTHCHECK_CLIENT_CERT_FILE` + `ELSER_HEALTHCHECK_CLIENT_KEY_FILE`;
- API key: the first of the server's keys (`ELSER_API_KEYS_FILE`, then `ELSER_API_KEYS`), sent as
  `authorization: ApiKey <key>` (needed when `ELSER_AUTH_HEALTH_AND_REFLECTION=true`).

Each command-line flag overrides its environment variable.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic_settings import BaseSettings, SettingsConfigDict

from elser_server.security import load_api_keys
from elser_server.settings import Settings

CA_FILE_ENV = "ELSER_HEALTHCHECK_CA_FILE"
CLIENT_CERT_FILE_ENV = "ELSER_HEALTHCHECK_CLIENT_CERT_FILE"
CLIENT_KEY_FILE_ENV = "ELSER_HEALTHCHECK_CLIENT_KEY_FILE"
SERVER_NAME_ENV = "ELSER_HEALTHCHECK_TLS_SERVER_NAME"


class ProbeSettings(BaseSettings):
    """The probe's own options, from `ELSER_HEALTHCHECK_*`; the server's are read through `Settings`."""

    model_config = SettingsConfigDict(env_prefix="ELSER_HEALTHCHECK_", extra="ignore", env_ignore_empty=True)

    ca_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    tls_server_name: str | None = None


_WILDCARD_HOSTS = {"", "0.0.0.0", "::", "[::]", "*"}


def parser() -> argparse.ArgumentParser:
    """elser-healthcheck's command line."""
    p = argparse.ArgumentParser(
        prog="elser-healthcheck",
        description="Query grpc.health.v1.Health/Check; exit 0 if SERVING, 1 otherwise. Connection settings "
        "default to the server's ELSER_* environment (TLS, API keys); flags override it.",
    )
    p.add_argument(
        "--address",
        help="host:port of the gRPC listener (default: the server's host and gRPC port settings, "
        "$ELSER_HOST and $ELSER_GRPC_PORT; localhost when the host is a wildcard).",
    )
    p.add_argument(
        "--service",
        default="",
        help='Health service name: "" is liveness, elser.v1.InferenceService readiness (default: "").',
    )
    p.add_argument("--timeout-s", type=float, default=3.0, help="Deadline of the check (default: 3).")
    p.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Connect with TLS, or --no-tls: plaintext (default: TLS when any --tls-* file is given or "
        f"ELSER_TLS_CERT_FILE, {CA_FILE_ENV} or {CLIENT_CERT_FILE_ENV} is set).",
    )
    p.add_argument(
        "--tls-ca-file",
        type=Path,
        help=f"PEM CA bundle that signed the server certificate (default: ${CA_FILE_ENV}, else the server's "
        "own $ELSER_TLS_CERT_FILE).",
    )
    p.add_argument(
        "--tls-cert-file", type=Path, help=f"PEM client certificate (mTLS; default: ${CLIENT_CERT_FILE_ENV})."
    )
    p.add_argument(
        "--tls-key-file",
        type=Path,
        help=f"PEM private key of the client certificate (mTLS; default: ${CLIENT_KEY_FILE_ENV}).",
    )
    p.add_argument(
        "--tls-server-name",
        help="Name to verify in the server certificate when it differs from the address host "
        f"(default: ${SERVER_NAME_ENV}).",
    )
    p.add_argument(
        "--api-key-file",
        type=Path,
        help="File of API keys (one a line, `#` comments); the first is sent as `authorization: ApiKey <key>` "
        "(default: the server's first key from $ELSER_API_KEYS_FILE, then $ELSER_API_KEYS).",
    )
    return p


@dataclass(frozen=True)
class Target:
    """Where and how to connect, after flags and environment are merged."""

    address: str
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    server_name: str | None = None
    api_key: str | None = None


def _default_address(server: Settings) -> str:
    host = server.host
    if host in _WILDCARD_HOSTS:
        host = "localhost"
    else:
        try:
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        except ValueError:
            pass  # a host name, or an already bracketed address
    return f"{host}:{server.grpc_port}"


def resolve(args: argparse.Namespace, server: Settings, probe: ProbeSettings) -> Target:
    """Merge the flags with the server's and the probe's settings: a flag wins over its variable."""
    address = args.address or _default_address(server)
    flag_files = (args.tls_ca_file, args.tls_cert_file, args.tls_key_file)
    if args.tls is False and any(f is not None for f in flag_files):
        raise SystemExit("elser-healthcheck: --no-tls conflicts with --tls-* files")
    cert = args.tls_cert_file or probe.client_cert_file
    key = args.tls_key_file or probe.client_key_file
    if args.tls is None:
        tls = any(f is not None for f in (*flag_files, server.tls_cert_file, probe.ca_file, cert))
    else:
        tls = args.tls
    api_key = _api_key(args.api_key_file, server)
    if not tls:
        return Target(address, api_key=api_key)
    if (cert is None) != (key is None):
        raise SystemExit(
            "elser-healthcheck: a client certificate and its key go together (--tls-cert-file and "
            f"--tls-key-file, or {CLIENT_CERT_FILE_ENV} and {CLIENT_KEY_FILE_ENV})"
        )
    return Target(
        address,
        tls=True,
        ca_file=args.tls_ca_file or probe.ca_file or server.tls_cert_file,
        cert_file=cert,
        key_file=key,
        server_name=args.tls_server_name or probe.tls_server_name,
        api_key=api_key,
    )


def _api_key(keys_file: Path | None, server: Settings) -> str | None:
    try:
        if keys_file is not None:
            keys = load_api_keys(keys_file, None)
            if not keys:
                raise SystemExit(f"elser-healthcheck: no API key in {keys_file}")
        else:
            keys = load_api_keys(server.api_keys_file, server.api_keys)
    except OSError as exc:
        raise SystemExit(f"elser-healthcheck: cannot read the API keys: {exc}") from exc
    return keys[0] if keys else None


def _read(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SystemExit(f"elser-healthcheck: {exc}") from exc


def _channel(target: Target) -> grpc.Channel:
    if not target.tls:
        return grpc.insecure_channel(target.address)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(target.ca_file),
        private_key=_read(target.key_file),
        certificate_chain=_read(target.cert_file),
    )
    options = [] if target.server_name is None else [("grpc.ssl_target_name_override", target.server_name)]
    return grpc.secure_channel(target.address, credentials, options=options)


def probe(target: Target, service: str, timeout_s: float) -> tuple[bool, str]:
    """(serving, what to print) for one Health/Check call to `target`."""
    metadata = () if target.api_key is None else (("authorization", f"ApiKey {target.api_key}"),)
    with _channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            request = health_pb2.HealthCheckRequest(service=service)
            reply = stub.Check(request, timeout=timeout_s, metadata=metadata)
        except grpc.RpcError as exc:
            return False, f"{exc.code().name}: {exc.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, status


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    target = resolve(args, Settings(), ProbeSettings())
    serving, message = probe(target, args.service, args.timeout_s)
    where = f"{target.address}{' (tls)' if target.tls else ''}"
    print(f"{where} service={args.service!r}: {message}", file=sys.stdout if serving else sys.stderr)
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main())
