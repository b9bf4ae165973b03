"""The WebSocket hub: the protocol (no I/O), rooms and fan-out, sessions, money feeds, the server."""
