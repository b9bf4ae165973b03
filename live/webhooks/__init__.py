"""Outbound webhooks: endpoints, SSRF-safe targets, signed at-least-once delivery."""
