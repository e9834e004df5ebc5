# The twistd dropin: names the tap module as a string so discovery stays cheap.
from twisted.application.service import ServiceMaker

wsrelay = ServiceMaker(
    "wsrelay",
    "wsrelay.process.tap",
    "A WebSocket edge relay: per-domain origins, heartbeats, timeouts, metering.",
    "wsrelay",
)
