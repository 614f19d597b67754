"""ES chunking settings and chunkers (word, sentence, none, recursive) with ICU boundaries."""

from elser_server.core.chunking.chunker import Chunk, chunk, chunk_off_loop
from elser_server.core.chunking.settings import (
    DEFAULT_CHUNKING,
    ChunkingSettings,
    SeparatorGroup,
    Strategy,
    parse_chunking_settings,
)

__all__ = [
    "DEFAULT_CHUNKING",
    "Chunk",
    "ChunkingSettings",
    "SeparatorGroup",
    "Strategy",
    "chunk",
    "chunk_off_loop",
    "parse_chunking_settings",
]
