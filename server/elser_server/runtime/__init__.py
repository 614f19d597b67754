"""Inference runtime: tokenizer, backends (onnxruntime, OpenVINO) behind one session seam, layouts, batching, sparse
extraction and an offline engine.

No transport imports here: the server core drives these from its own worker threads."""
