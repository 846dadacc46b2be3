"""Receiving messages: MLLP framing and listener, HTTP ingest, the ingest pipeline."""
