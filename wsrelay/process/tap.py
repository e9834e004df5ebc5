"""
twistd entry point: `twistd -n wsrelay --config etc/relay.ini`.

Every mistake that stops startup (the config, its certificates, a statistics
store that cannot be opened, a port that cannot be listened on) is one line
on stderr and exit status 1, without twistd's usage text or a traceback;
`--check` validates the same without opening any port.
"""

import errno
import os
import sys

from twisted.application import service
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.python import usage

from wsrelay import __version__
from wsrelay.config import ConfigError, load_config
from wsrelay.tls import TLSUnavailable, require_service_identity

log = Logger(namespace="wsrelay.tap")
LISTEN_ERRNOS = (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL)


class Refused(SystemExit):
    """Startup refused: str() is the one line the operator sees (Python prints it and exits 1)."""


class Options(usage.Options):
    synopsis = "[--config FILE] [--check] [--help-selectors] [--version]"
    longdesc = "Run the wsrelay WebSocket edge relay. Every setting is in the config file."
    optFlags = [
        ["check", None, "Validate the config file, its certificates and the statistics store without "
                        "opening any port: print ok and exit 0, or the error in one line and exit 1."],
    ]
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

    def opt_version(self):
        """Print wsrelay's version and exit."""
        self.selectorOutput.write(f"wsrelay {__version__}\n")
        raise SystemExit(0)

    def postOptions(self):
        try:
            require_service_identity()  # never fall back to Twisted's weak host name checks
            self.config = load_config(self["config"])
            if self["check"]:
                check_store(self.config, create=False)
        except (ConfigError, TLSUnavailable) as e:
            raise Refused(str(e))
        if self["check"]:
            for line in self.config.warnings:
                self.selectorOutput.write(f"warning: {line}\n")
            self.selectorOutput.write("ok\n")
            raise SystemExit(0)


def check_store(config, create):
    """
    Open the statistics store once (create: as the relay will, else only check
    that it could), so a store that cannot be opened stops startup like a config
    error; an outage later is ridden out by the meter. A store without a `check`
    (postgresql: a server down at startup is such an outage) is not checked.
    """
    settings = config.accounting
    check = getattr(settings.factory, "check", None) if settings is not None else None
    if check is None:
        return
    from wsrelay.accounting import OptionError

    try:
        check(settings.options, create)
    except OptionError as e:
        raise ConfigError(config.path, "accounting", e.key, str(e))


def _listen_entries(config):
    """(section and key, entry, port, interface) of every endpoint the relay listens on."""
    from twisted.internet.endpoints import _parse

    from wsrelay.config import split_listener

    entries = [("[relay] listen", entry) for entry in config.listen]
    if config.accounting is not None and config.accounting.admin:
        entries.append(("[accounting] admin", config.accounting.admin))
    for where, entry in entries:
        try:
            args, kwargs = _parse(split_listener(entry)[0])
        except Exception:
            continue
        port = kwargs.get("port", args[1] if len(args) > 1 else None)
        yield where, entry, str(port), kwargs.get("interface", "")


def listen_problem(config, e):
    """The one line for a CannotListenError: the file, the key and the entry whose port it is."""
    reason = getattr(e.socketError, "strerror", None) or str(e.socketError)
    where = f"{e.interface or '*'}:{e.port}"
    for key, entry, port, interface in _listen_entries(config):
        if port == str(e.port) and interface in ("", e.interface):
            return f"{config.path}: {key}: {entry}: cannot listen on {where}: {reason}"
    return f"{config.path}: cannot listen on {where}: {reason}"


class Startup(service.MultiService):
    """The relay's services; a port that cannot be opened stops startup in one line (listen_problem)."""

    def __init__(self, top, config):
        super().__init__()
        self.config = config
        top.setServiceParent(self)

    def privilegedStartService(self):
        self._refusing(super().privilegedStartService)

    def startService(self):
        self._refusing(super().startService)

    def _refusing(self, start):
        try:
            start()
        except CannotListenError as e:
            # Logging has begun by now: the line goes to the log (journald), not a traceback.
            log.critical("{problem}", problem=listen_problem(self.config, e))
            raise SystemExit(1)
        except OSError as e:
            if e.errno not in LISTEN_ERRNOS:
                raise
            # the parent of `workers = N` tries each port before any worker binds it
            log.critical("{problem}", problem=f"{self.config.path}: [relay] listen: {e.strerror}")
            raise SystemExit(1)


def makeService(options):
    from twisted.internet import reactor

    from wsrelay.process.service import build_service
    from wsrelay.process.signals import SignalHook

    from wsrelay.process.sdnotify import sd_notify

    config = options.config
    try:
        check_store(config, create=True)
    except ConfigError as e:
        raise Refused(str(e))
    if options["worker"] is None and config.workers > 1:
        from wsrelay.process.workers import WorkerGroup

        top = service.MultiService()
        group = WorkerGroup(config, config.workers, reactor, notify=sd_notify)
        SignalHook(group, reactor).setServiceParent(top)  # first: SIGHUP handled before the group says READY
        group.setServiceParent(top)
        return Startup(top, config)
    worker = options["worker"]
    if worker is not None:
        from wsrelay.process.workers import become_worker

        become_worker(os.getppid())
    store = config.accounting.build(reactor) if config.accounting is not None else None
    peers = None
    if worker is not None and os.environ.get("WSRELAY_PEERS"):  # the admin endpoint answers for every worker
        peers = (os.environ["WSRELAY_PEERS"], worker, config.workers)
    top = build_service(config, reactor, notify=sd_notify if worker is None else None,
                        reuse_port=worker is not None, store=store, admin=worker in (None, 0), peers=peers)
    top.relay.worker = os.getpid() if worker is not None else None
    SignalHook(top, reactor).setServiceParent(top)
    return Startup(top, config)
