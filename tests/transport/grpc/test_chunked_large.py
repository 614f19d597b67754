"""A 1 MB document chunked and embedded through InferChunked: every chunk arrives, in order, covering the text,
while the server holds only a window of chunks at a time."""

from __future__ import annotations

import resource

import grpc
from elser.v1 import inference_service_pb2 as is_pb2
from elser.v1 import inference_service_pb2_grpc as is_grpc
from elser.v1 import types_pb2
from elser_server.core.service import InferenceCore

SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank today.",
    "Überall grüßen Füchse; 狐狸在河边跳跃。",
    "Emoji travel too 🦊🐶 and stay whole!",
    "Sparse vectors index words that never appeared in the text at all.",
]


def megabyte_text() -> str:
    parts: list[str] = []
    size = 0
    i = 0
    while size < 1_000_000:
        sentence = SENTENCES[i % len(SENTENCES)] + " "
        parts.append(sentence)
        size += len(sentence.encode("utf-8"))
        i += 1
    return "".join(parts)


async def test_one_megabyte_document(channel: grpc.aio.Channel, core: InferenceCore) -> None:
    await core.put_endpoint(
        "my-elser",
        "sparse_embedding",
        {
            "service": "elasticsearch",
            "service_settings": {"model_id": ".elser_model_2", "num_allocations": 1, "num_threads": 1},
        },
    )
    text = megabyte_text()
    stub = is_grpc.InferenceServiceStub(channel)
    request = is_pb2.InferChunkedRequest(
        inference_id="my-elser",
        input=[text],
        options=types_pb2.InferenceOptions(top_k=8),
    )
    rss_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    expected_index = 0
    covered_to = 0
    async for response in stub.InferChunked(request, timeout=600):
        if response.HasField("done"):
            assert not response.done.HasField("error")
            assert response.done.chunk_count == expected_index
            break
        chunk = response.chunk
        assert chunk.chunk_index == expected_index
        # sentence chunks (default settings, overlap 1) start at or before the previous end: no gaps
        assert chunk.start_code_point <= covered_to < chunk.end_code_point
        covered_to = chunk.end_code_point
        assert 0 < len(chunk.embedding.token_ids) <= 8
        expected_index += 1
    assert covered_to == len(text)
    assert expected_index > 500  # ≈ 1 MB / 250 words per chunk
    assert core.deployment_stats("my-elser").queued == 0
    # Embeddings stream out as they are made: the peak grows by far less than all chunks' vectors would take.
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before_kb) / 1024
    assert growth_mb < 400, growth_mb
