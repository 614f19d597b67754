"""Transport-agnostic core: endpoints, deployments, queueing/batching, chunking. Never imports grpc or aiohttp."""
