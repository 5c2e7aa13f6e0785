"""Thin faust agents, the HTTP API and the composition root (settings -> adapters -> agents)."""
