"""`elser-healthcheck`: exit 0 only if gRPC health reports SERVING.

Used by the image's HEALTHCHECK and as a Kubernetes exec probe where native `grpc:` probes cannot work (they
speak plaintext only, so a TLS or mTLS listener needs this).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="elser-healthcheck",
        description="Query grpc.health.v1.Health/Check; exit 0 if SERVING, 1 otherwise.",
    )
    p.add_argument(
        "--address",
        # The container sets ELSER_GRPC_PORT for the server; following it keeps the probe on the right port.
        default=f"localhost:{os.environ.get('ELSER_GRPC_PORT', '50051')}",
        help="host:port of the gRPC listener (default: localhost:$ELSER_GRPC_PORT or localhost:50051).",
    )
    p.add_argument(
        "--service",
        default="",
        help='Health service name: "" is liveness, elser.v1.InferenceService readiness (default: "").',
    )
    p.add_argument("--timeout-s", type=float, default=3.0, help="Deadline of the check (default: 3).")
    p.add_argument("--tls", action="store_true", help="Connect with TLS (implied by any --tls-* file).")
    p.add_argument("--tls-ca-file", type=Path, help="PEM CA bundle that signed the server certificate.")
    p.add_argument("--tls-cert-file", type=Path, help="PEM client certificate (mTLS).")
    p.add_argument("--tls-key-file", type=Path, help="PEM private key of the client certificate (mTLS).")
    p.add_argument(
        "--tls-server-name",
        help="Name to verify in the server certificate when it differs from the address host.",
    )
    return p


def _channel(args: argparse.Namespace) -> grpc.Channel:
    files: tuple[Path | None, ...] = (args.tls_ca_file, args.tls_cert_file, args.tls_key_file)
    if not args.tls and all(f is None for f in files):
        return grpc.insecure_channel(args.address)
    if (args.tls_cert_file is None) != (args.tls_key_file is None):
        raise SystemExit("elser-healthcheck: --tls-cert-file and --tls-key-file go together")
    ca, cert, key = (f.read_bytes() if f is not None else None for f in files)
    credentials = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
    options = (
        [] if args.tls_server_name is None else [("grpc.ssl_target_name_override", args.tls_server_name)]
    )
    return grpc.secure_channel(args.address, credentials, options=options)


def check(args: argparse.Namespace) -> tuple[bool, str]:
    """(serving, what to print) for one Health/Check call."""
    with _channel(args) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout_s)
        except grpc.RpcError as exc:
            return False, f"{exc.code().name}: {exc.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, status


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    serving, message = check(args)
    print(f"{args.address} service={args.service!r}: {message}", file=sys.stdout if serving else sys.stderr)
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main())
