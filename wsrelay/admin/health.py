"""
/healthz and /readyz, answered without a token for load balancers and
Kubernetes probes. /healthz: the process answers (its reactor turns).
/readyz: the configuration is loaded, every `listen` entry is open and the
relay is not draining; 503 with the failing checks otherwise.
"""


def readiness(service):
    """{check: bool} of a RelayService (config, listeners, draining)."""
    relay = service.relay
    config = relay.config
    return {
        "config_loaded": config is not None,
        "listeners_open": bool(service.running) and config is not None
        and all(entry in service.listeners for entry in config.listen),
        "not_draining": not relay.draining,
    }


def health_answer(path, service):
    """(status, body) of /healthz or /readyz."""
    if path == "/healthz":
        return 200, {"status": "ok"}
    checks = readiness(service) if service is not None else {"config_loaded": False}
    ready = all(checks.values())
    return (200 if ready else 503), {"status": "ready" if ready else "not ready", "checks": checks}
