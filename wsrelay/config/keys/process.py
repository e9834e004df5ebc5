"""
The keys of running the relay as a process: workers, reload and shutdown.
"""

from wsrelay.config import kinds as k
from wsrelay.config.keytypes import RELAY, Key, Topic

KEYS = (
    Topic("Relay processes sharing the listeners (SO_REUSEPORT: the kernel spreads new connections over "
          "them); auto = the CPUs this process may run on. With more than one, a parent process starts "
          "them, restarts one that dies, and passes SIGHUP and SIGTERM on; only tcp:, tcp6: and ssl: "
          "listeners. Read at start only (a reload does not change the number). Default 1: no parent, "
          "one process."),
    Key("workers", RELAY, k.CountOrAuto(zero="'0' must be 1 or more, or auto"), 1, "1",
        "Relay processes sharing the listeners, or auto (the CPUs this process may use).",
        doc="Relay processes sharing the listeners, or `auto` (the CPUs this process may run on). Above "
            "1 a parent process supervises them (see [operations.md](operations.md#several-workers)); "
            "only `tcp:`, `tcp6:` and `ssl:` listeners then. Read at startup only. Every limit below is "
            "per process, so per worker."),
    Topic("Reload and shutdown. SIGHUP re-reads this file: sessions whose domain, origins or "
          "origin_protocol changed (or whose domain is gone) get 1012, and at SIGTERM every session gets "
          "1001, spread over drain_window seconds with jitter so clients do not reconnect all at once. "
          "0 = all at once."),
    Key("drain_window", RELAY, k.Seconds(), 10.0, "10",
        "Seconds over which reload and SIGTERM closes are spread; 0: all at once.",
        doc="Seconds over which the relay spreads the closes it starts itself: on a reload, sessions "
            "whose route changed get 1012; on SIGTERM, every session gets 1001. Each session gets its "
            "own slot of the window at a random point within it, so clients do not reconnect in one "
            "burst. `0`: all at once."),
    Key("drain_timeout", RELAY, k.Seconds(zero="must be greater than 0"), 30.0, "30",
        "SIGTERM: seconds after which the sessions still open are closed at once.",
        ini="SIGTERM: seconds after which the sessions still open are closed at once (a second SIGTERM "
            "does the same).",
        doc="SIGTERM: seconds after which the sessions still open are closed at once (1001, dropped 2 s "
            "later if their peers do not answer); a second SIGTERM does the same at once. Must be "
            "greater than 0; a `drain_window` longer than it is warned about."),
    Topic("Logs (docs/logging.md). Session lines of refused handshakes and of protocol violations: at most "
          "log_refusals_per_ip per client address per log_summary_interval seconds; the rest are counted and "
          "summarised in one line per address (0 = summarise them all)."),
    Key("log_refusals_per_ip", RELAY, k.Count(minimum=0), 10, "10",
        "Refusal and violation lines logged per client address per log_summary_interval; 0: all summarised.",
        doc="Session lines of refused handshakes and of sessions the relay closed for a protocol violation "
            "(1002, 1007, 1008, 1009) logged per client address per `log_summary_interval`; the rest are "
            "counted and summarised in one line per address at the end of the interval "
            "([logging.md](logging.md#quiet-logs)). `0`: summarise them all."),
    Key("log_summary_interval", RELAY, k.Seconds(zero="must be greater than 0"), 60.0, "60",
        "Seconds over which log_refusals_per_ip counts.",
        doc="Seconds over which `log_refusals_per_ip` counts; more than 0.", ini=""),
    Key("log_interval", RELAY, k.Seconds(off=True), 0.0, "off",
        "Seconds between records of every open session; off: none.",
        ini="Seconds between records of every session still open, with its running counters (so long "
            "sessions show before they end); off = none.",
        doc="Seconds between records (`event: session_open`) of every session still open, with its running "
            "counters, so that long sessions show in the log before they end. `off` or `0`: none."),
)
