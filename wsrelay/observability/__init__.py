"""
What the relay tells about itself beyond the session log: Prometheus metrics and the
gates that summarise repeated log lines.
"""
