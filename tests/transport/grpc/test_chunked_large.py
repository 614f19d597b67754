"""A 1 MB document chunked and embedded through InferChunked: every chunk arrives, in order, covering the text,
while the server holds only a window of chunks' embeddings at a time."""

from __future__ import annotations

import gc

import grpc
from elser.v1 import inference_service_pb2 as is_pb2
from elser.v1 import inference_service_pb2_grpc as is_grpc
from elser_server.core.chunked import CHUNK_WINDOW
from elser_server.core.service import InferenceCore
from elser_server.core.types import SparseEmbedding
from support import PUT_BODY

SENTENCES = [
    "The quick brown fox jumps over the lazy dog near the river bank today.",
    "Überall grüßen Füchse; 狐狸在河边跳跃。",
    "Emoji travel too 🦊🐶 and stay whole!",
    "Sparse vectors index words that never appeared in the text at all.",
]
SAMPLE_EVERY = 64  # chunks between two counts of the live embeddings (a heap walk each: keep them few)


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


def live_embeddings() -> tuple[int, int]:
    """How many `SparseEmbedding`s are alive in this process (the server runs in it), and their vectors' bytes."""
    count = nbytes = 0
    for obj in gc.get_objects():
        if type(obj) is SparseEmbedding:  # not isinstance: that would poke lazy modules (torch warns)
            count += 1
            nbytes += obj.token_ids.nbytes + obj.weights.nbytes
    return count, nbytes


async def test_one_megabyte_document(channel: grpc.aio.Channel, core: InferenceCore) -> None:
    await core.put_endpoint("my-elser", "sparse_embedding", PUT_BODY)
    text = megabyte_text()
    stub = is_grpc.InferenceServiceStub(channel)
    # No top_k: full-size vectors, so holding all of them would show.
    request = is_pb2.InferChunkedRequest(inference_id="my-elser", input=[text])
    expected_index = 0
    covered_to = 0
    # what holding every chunk's embedding at once would take (uint32 ids + float32 weights)
    all_vector_bytes = 0
    peak_count = peak_bytes = 0
    async for response in stub.InferChunked(request, timeout=600):
        if response.HasField("done"):
            # the server's stream is still open here: anything it kept until the end is still alive
            count, nbytes = live_embeddings()
            peak_count, peak_bytes = max(peak_count, count), max(peak_bytes, nbytes)
            assert not response.done.HasField("error")
            assert response.done.chunk_count == expected_index
            break
        chunk = response.chunk
        assert chunk.chunk_index == expected_index
        # sentence chunks (default settings, overlap 1) start at or before the previous end: no gaps
        assert chunk.start_code_point <= covered_to < chunk.end_code_point
        covered_to = chunk.end_code_point
        nnz = len(chunk.embedding.token_ids)
        assert nnz == len(chunk.embedding.weights) > 0
        all_vector_bytes += 8 * nnz
        if expected_index % SAMPLE_EVERY == 0:
            count, nbytes = live_embeddings()
            peak_count, peak_bytes = max(peak_count, count), max(peak_bytes, nbytes)
        expected_index += 1
    assert covered_to == len(text)
    assert expected_index > 500  # ≈ 1 MB / 250 words per chunk
    assert core.deployment_stats("my-elser").queued == 0
    # Embeddings stream out as they are made: at any time the server holds the window being streamed and the
    # (at most two) windows queued ahead, a small part of what all the chunks' vectors take.
    assert peak_count <= 3 * CHUNK_WINDOW, (peak_count, expected_index)
    assert peak_bytes < all_vector_bytes / 5, (peak_bytes, all_vector_bytes)
