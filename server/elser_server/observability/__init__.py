"""Metrics, structured logs and request ids: shared by both transports, no transport code in here."""
