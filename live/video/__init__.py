"""Live video: WHIP ingest, WHEP playback, one shared encode per stream (aiortc + PyAV)."""
