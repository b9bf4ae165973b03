"""The running node: assembly, the embedded Valkey, HTTP serving, metrics, the CLI."""
