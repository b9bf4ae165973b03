"""livecart's real-time side: app assembly, settings, auth, streams, and the embedded Valkey."""
