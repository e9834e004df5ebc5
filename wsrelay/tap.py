"""twistd entry point: `twistd -n wsrelay --config etc/relay.ini`."""

import os
import sys

from twisted.application import service
from twisted.python import usage

from wsrelay.config import ConfigError, load_config
from wsrelay.tls import TLSUnavailable, require_service_identity


class Options(usage.Options):
    synopsis = "[--config FILE] [--help-selectors]"
    longdesc = "Run the wsrelay WebSocket edge relay. Every setting is in the config file."
    optParameters = [
        ["config", "c", "etc/relay.ini", "The relay's INI configuration file."],
        ["worker", None, None, "(internal) run as worker N of a `workers = N` group", int],
    ]
    selectorOutput = sys.stdout

    def opt_help_selectors(self):
        """List the installed origin selectors (selector = NAME) with their options, and exit."""
        from wsrelay.selectors import describe, installed

        self.selectorOutput.write(describe(installed()))
        raise SystemExit(0)

    def postOptions(self):
        try:
            require_service_identity()  # never fall back to Twisted's weak host name checks
            self.config = load_config(self["config"])
        except (ConfigError, TLSUnavailable) as e:
            raise usage.UsageError(str(e))


def makeService(options):
    from twisted.internet import reactor

    from wsrelay.service import build_service
    from wsrelay.signals import SignalHook

    from wsrelay.sdnotify import sd_notify

    config = options.config
    if options["worker"] is None and config.workers > 1:
        from wsrelay.workers import WorkerGroup

        top = service.MultiService()
        group = WorkerGroup(config, config.workers, reactor, notify=sd_notify)
        group.setServiceParent(top)
        SignalHook(group, reactor).setServiceParent(top)
        return top
    worker = options["worker"]
    if worker is not None:
        from wsrelay.workers import become_worker

        become_worker(os.getppid())
    store = config.accounting.build(reactor) if config.accounting is not None else None
    peers = None
    if worker is not None and os.environ.get("WSRELAY_PEERS"):  # the admin endpoint answers for every worker
        peers = (os.environ["WSRELAY_PEERS"], worker, config.workers)
    top = build_service(config, reactor, notify=sd_notify if worker is None else None,
                        reuse_port=worker is not None, store=store, admin=worker in (None, 0), peers=peers)
    top.relay.worker = os.getpid() if worker is not None else None
    SignalHook(top, reactor).setServiceParent(top)
    return top
