"""gRPC transport: elser.v1 servicers over the core, health, reflection."""
