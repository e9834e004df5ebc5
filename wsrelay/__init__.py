"""wsrelay: a self-hosted WebSocket edge relay, run as a twistd plugin."""

__version__ = "0.1.0"
