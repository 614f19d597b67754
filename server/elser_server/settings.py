"""The one configuration reference: every option is a CLI flag (`--grpc-port`) and an env var (`ELSER_GRPC_PORT`)."""

from __future__ import annotations

import math
import os
import resource
import socket
from pathlib import Path
from typing import Literal

from pydantic import ByteSize, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def detect_processors() -> int:
    """CPUs available to this process: a cgroup v2 CPU quota (containers) wins over the affinity mask, which
    wins over the machine's count (in a container, os.cpu_count() is the node's)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return max(1, min(cpus, math.floor(int(quota) / int(period))))


GRPC_PENDING_CALLS_FLOOR = 4096


def detect_open_files() -> int:
    """The process's soft limit on open files (each connection takes one)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def detect_memory_limit(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """Bytes of memory this process may use: the container's limit (cgroup v2 `memory.max`, else v1
    `memory/memory.limit_in_bytes`) when it is below the machine's memory, else the machine's memory."""
    machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in (cgroup / "memory.max", cgroup / "memory" / "memory.limit_in_bytes"):
        try:
            raw = path.read_text().strip()
        except OSError:
            continue
        # "max" (v2) or a huge number (v1) means no limit.
        return min(machine, int(raw)) if raw.isdigit() else machine
    return machine


class Settings(BaseSettings):
    """ELSER inference service settings. CLI flags override `ELSER_*` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="ELSER_",
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_prog_name="elser-server",
        cli_use_class_docs_for_groups=True,
        extra="ignore",
        env_ignore_empty=True,  # ELSER_X= (empty) means unset, as shells and manifests often write it
    )

    # network
    host: str = Field("0.0.0.0", description="Address both the gRPC and the HTTP listeners bind to.")
    grpc_port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 picks a free port).")
    http_port: int = Field(9200, ge=0, le=65535, description="HTTP port of the ES-compatible REST shim.")
    http_enabled: bool = Field(True, description="Serve the ES-compatible REST shim.")
    tls_cert_file: Path | None = Field(
        None, description="PEM server certificate chain; enables TLS on the gRPC and HTTP listeners."
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of the server certificate.")
    tls_client_ca_file: Path | None = Field(None, description="PEM CA bundle for client certificates (mTLS).")
    tls_require_client_cert: bool = Field(False, description="Reject clients without a valid certificate.")
    reflection: bool = Field(True, description="Serve gRPC server reflection (grpcurl, buf curl).")
    grpc_max_concurrent_streams: int = Field(
        0,
        ge=0,
        description="gRPC calls one connection may have open at once (HTTP/2 SETTINGS); 0 = unlimited. Calls "
        "past it are refused as UNAVAILABLE (RST_STREAM), not RESOURCE_EXHAUSTED: prefer the call limit below.",
    )
    grpc_max_concurrent_calls: int = Field(
        4096,
        ge=0,
        description="gRPC calls in flight in the whole server (health checks aside); past it RESOURCE_EXHAUSTED "
        "with a retry hint. 0 = unlimited.",
    )
    grpc_max_connections: int = Field(
        0,
        ge=0,
        description="gRPC connections open at once; past it new ones are closed at once. 0: a quarter of the "
        "open-file limit.",
    )
    grpc_handshake_timeout_s: float = Field(
        10.0,
        gt=0,
        description="A gRPC connection that has not finished its TLS and HTTP/2 handshake in this time is closed.",
    )
    grpc_keepalive_time_s: float = Field(
        30.0,
        gt=0,
        description="The server pings a gRPC connection silent for this long (dead peers are found).",
    )
    grpc_keepalive_timeout_s: float = Field(
        10.0, gt=0, description="A connection whose keepalive ping is unanswered this long is closed."
    )
    grpc_min_client_ping_interval_s: float = Field(
        10.0, gt=0, description="Clients may ping this often; faster pingers get GOAWAY `too_many_pings`."
    )
    grpc_max_connection_idle_s: float = Field(
        300.0, gt=0, description="A gRPC connection without calls for this long is closed (GOAWAY)."
    )
    grpc_max_connection_age_s: float = Field(
        600.0,
        gt=0,
        description="GOAWAY after this long, so long-lived clients re-resolve and spread over replicas.",
    )
    grpc_max_connection_age_grace_s: float = Field(
        30.0, gt=0, description="Calls in flight at a connection's max age get this long to finish."
    )
    http_max_connections: int = Field(
        0,
        ge=0,
        description="REST connections open at once; a new one closes the one idle longest. 0: a quarter of "
        "the open-file limit.",
    )
    http_idle_timeout_s: float = Field(
        30.0,
        gt=0,
        description="A REST connection without a complete request head for this long is closed (idle "
        "keep-alive connections and slowly sent headers alike).",
    )
    http_body_timeout_s: float = Field(
        30.0,
        gt=0,
        description="A REST request whose body stops arriving for this long gets 408 and is closed.",
    )
    infer_stream_window: int = Field(
        64, ge=1, description="InferStream messages read ahead of their responses per stream (flow control)."
    )

    # authentication (off unless keys are configured)
    api_keys_file: Path | None = Field(
        None, description="File of accepted API keys, one per line (`#` comment lines); enables API-key auth."
    )
    api_keys: str | None = Field(
        None, description="Accepted API keys, comma separated (prefer the file: flags show in `ps`)."
    )
    auth_health_and_reflection: bool = Field(
        False, description="Require an API key for gRPC health checks and reflection too."
    )

    # storage and models
    data_dir: Path = Field(Path("data"), description="Endpoint database and installed models live here.")
    store_url: str | None = Field(
        None,
        description="Shared endpoint store of several replicas: `postgresql://user@host:port/db` (libpq URI). "
        "Unset: an SQLite file in the data dir, for one process.",
    )
    store_password_file: Path | None = Field(
        None,
        description="File holding the store's password (overrides one in the URL; keeps it out of `ps`).",
    )
    store_timeout_s: float = Field(
        5.0,
        gt=0,
        description="Connecting to the store, or waiting for a pooled connection, fails after this.",
    )
    store_startup_timeout_s: float = Field(
        120.0, gt=0, description="At start-up, how long to retry an unreachable store before exiting."
    )
    store_resync_interval_s: float = Field(
        30.0,
        gt=0,
        description="Full comparison with the shared store this often (LISTEN/NOTIFY is the fast path).",
    )
    replica_name: str | None = Field(
        None,
        description="This replica's name in deployment stats, watch events and logs (unset: the host name, the "
        "pod name on Kubernetes).",
    )
    model_repository: str = Field(
        "models/repository",
        description="Where models are installed from: a directory, file:// or http(s):// URL.",
    )
    model_convert_quantize: Literal["none", "int8"] = Field(
        "none",
        description="Quantization of repository models converted on install (Elastic's TorchScript ELSER, Hugging "
        "Face checkpoints): int8 is faster, slightly less accurate (docs/model-package.md).",
    )
    runtime: Literal["auto", "onnxruntime", "openvino"] = Field(
        "auto",
        description="Inference backend. auto: OpenVINO where the `openvino` extra is installed (bf16 needs it), "
        "else onnxruntime (docs/operating.md, 'Choosing backend and precision').",
    )
    precision: Literal["auto", "fp32", "bf16", "int8"] = Field(
        "auto",
        description="Numeric precision of every model. auto: .elser_model_2 exact fp32; .elser_model_2_linux-x86_64 "
        "the fastest layout meeting the accuracy bars on this CPU (bf16 where the CPU has it natively, else int8).",
    )
    preload_default_endpoint: bool = Field(
        True,
        description="Deploy the default endpoint (.elser-2-elasticsearch) at start-up instead of on first use.",
    )

    processors: int = Field(
        0,
        ge=0,
        description="Processors deployments may use for allocations × threads (0: the container's CPU quota, "
        "else the CPUs this process may run on).",
    )

    # memory admission
    memory_limit: ByteSize = Field(
        ByteSize(0),
        description="Memory deployments may use (bytes, or e.g. `6GiB`): a deployment, or a scale-up, whose estimated "
        "memory does not fit is refused with ES's 429 (docs/operating.md). 0: the container's memory limit, else "
        "the machine's memory, minus `memory-headroom`.",
    )
    memory_headroom: ByteSize = Field(
        "512MiB",
        validate_default=True,
        description="Left out of the automatic memory limit for the process itself (interpreter, libraries, "
        "request buffers).",
    )
    timed_out_deployment_keep_s: float = Field(
        300.0,
        ge=0,
        description="The deployment of a PUT that timed out (ES's 408) is kept this long for a retried PUT of the "
        "same id to adopt (GET shows it, DELETE stops it), then stopped.",
    )

    # admission and batching
    max_inputs_per_request: int = Field(1024, ge=1, description="Texts accepted in one inference request.")
    max_input_bytes: int = Field(1 << 20, ge=1, description="UTF-8 bytes accepted per input text.")
    max_request_bytes: int = Field(32 << 20, ge=1024, description="Largest request message/body accepted.")
    max_response_bytes: int = Field(64 << 20, ge=1024, description="Largest gRPC response message sent.")
    queue_capacity: int = Field(
        10_000, ge=1, description="Queued bulk texts per deployment before rejecting (ES)."
    )
    interactive_queue_capacity: int = Field(
        1_000,
        ge=1,
        description="Queued search-priority texts per deployment before rejecting: their own room, so a full "
        "bulk queue never refuses a search query.",
    )
    token_budget: int = Field(
        1024, ge=64, description="Padded tokens per model call (length-sorted batches; about 1K is fastest)."
    )
    max_batch_size: int = Field(32, ge=1, description="Texts per model call at most.")
    default_timeout_s: float = Field(30.0, gt=0, description="Inference deadline when the caller sets none.")
    put_timeout_s: float = Field(30.0, gt=0, description="How long PUT waits for a deployment to start (ES).")
    chunking_separator_timeout_s: float = Field(
        1.0,
        gt=0,
        description="CPU seconds the recursive strategy's separator regexes get per input (the process's CPU time, "
        "as the regex engine counts it); past it the request fails with ES's 400 (ES bounds the same work by "
        "characters read). The request's deadline also holds.",
    )

    # adaptive allocations (ES defaults)
    adaptive_interval_s: float = Field(
        10.0, gt=0, description="How often adaptive allocations are re-evaluated."
    )
    scale_to_zero_s: float = Field(
        86_400.0, gt=0, description="Idle seconds before an adaptive deployment with min 0 goes to zero."
    )
    scale_up_cooldown_s: float = Field(300.0, ge=0, description="No scale-down this long after a scale-up.")

    # lifecycle
    drain_s: float = Field(
        5.0, ge=0, description="After SIGTERM: seconds NOT_SERVING before closing listeners."
    )
    shutdown_grace_s: float = Field(30.0, ge=0, description="Seconds in-flight calls get to finish on stop.")
    log_level: str = Field("INFO", description="Python logging level.")
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines as text or as JSON objects (both carry the request id)."
    )
    log_bodies: bool = Field(
        False, description="Log request bodies, input texts included, at DEBUG level (debugging only)."
    )

    # metrics
    metrics_enabled: bool = Field(True, description="Serve Prometheus metrics on their own port.")
    tracing_enabled: bool = Field(
        False,
        description="Export OpenTelemetry traces over OTLP (needs the `otel` extra; OTEL_EXPORTER_OTLP_* configure it).",
    )
    metrics_port: int = Field(
        9464, ge=0, le=65535, description="Port of the Prometheus `/metrics` listener (0 picks a free port)."
    )

    @field_validator("store_url")
    @classmethod
    def _postgresql_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "must be a postgresql:// URL (leave it unset for the SQLite store in the data dir)"
            )
        return value

    @model_validator(mode="after")
    def _runtime_can_run_precision(self) -> Settings:
        if self.runtime == "onnxruntime" and self.precision == "bf16":
            raise ValueError(
                "ELSER_PRECISION=bf16 needs ELSER_RUNTIME=openvino or auto (onnxruntime has no bf16 CPU kernels)"
            )
        return self

    @property
    def effective_processors(self) -> int:
        return self.processors or detect_processors()

    @property
    def grpc_max_pending_calls(self) -> int:
        """Calls gRPC holds before a handler takes them: enough that a burst reaches the call limit (and its
        RESOURCE_EXHAUSTED) instead of being cancelled by gRPC itself, still bounded."""
        return max(
            GRPC_PENDING_CALLS_FLOOR, 16 * (self.grpc_max_concurrent_calls or GRPC_PENDING_CALLS_FLOOR)
        )

    @property
    def effective_grpc_max_connections(self) -> int:
        return self.grpc_max_connections or max(16, detect_open_files() // 4)

    @property
    def effective_http_max_connections(self) -> int:
        return self.http_max_connections or max(16, detect_open_files() // 4)

    @property
    def effective_replica_name(self) -> str:
        return self.replica_name or socket.gethostname()

    @property
    def memory_budget(self) -> int:
        """Bytes the deployments may use together: `memory_limit`, else the detected limit less the headroom."""
        if self.memory_limit:
            return int(self.memory_limit)
        return max(0, detect_memory_limit() - int(self.memory_headroom))

    @property
    def database_path(self) -> Path:
        return self.data_dir / "endpoints.sqlite3"

    @property
    def model_cache_dir(self) -> Path:
        return self.data_dir / "models"
