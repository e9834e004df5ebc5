"""WebSocket load generator for bench/relay-bench. Loopback targets only.

    python wsload.py throughput --url ws://127.0.0.1:PORT/ --conns 64 --size 1024 --duration 3 --warmup 0.5
        closed loop: every connection sends one message, waits for its echo, sends the next
    python wsload.py latency --url ... --rate 2000 --conns 20 --size 1024 --duration 3
        open loop at a fixed total rate; each sample is timed from its own send to its echo, and
        the sender never waits for replies (max_outstanding and lost show a target falling behind)
    python wsload.py hold --url ... --conns 2000 --hold 120
        opens idle connections, prints {"event": "ready", ...}, keeps them until stdin closes,
        SIGTERM, or --hold seconds; then closes them and prints the result

--client picows (default; Cython, on uvloop) or --client websockets (the pure-asyncio
`websockets` library, also on uvloop; throughput and hold only) -- the second exists to show
how fast each client is on the tools' core (see README.md).

Progress markers {"event": "measure_start"} / {"event": "measure_end"} go to stdout so the
driver can read other processes' CPU over exactly the measured window; the last stdout line
is the JSON result. A one-line summary goes to stderr.
"""
import argparse
import asyncio
import gc
import json
import os
import signal
import sys
import time
from collections import deque
from urllib.parse import urlparse

import uvloop

now = time.perf_counter
stats = {"errors": 0, "unexpected_closes": 0, "first_error": ""}
closing = False


def note_error(what):
    stats["errors"] += 1
    if not stats["first_error"]:
        stats["first_error"] = f"{type(what).__name__}: {what}" if isinstance(what, BaseException) else str(what)


def event(name, **kw):
    print(json.dumps({"event": name, **kw}), flush=True)


def emit(res, line):
    res.update(errors=stats["errors"], unexpected_closes=stats["unexpected_closes"])
    if stats["first_error"]:
        res["first_error"] = stats["first_error"]
    print(json.dumps(res), flush=True)
    print(line, file=sys.stderr, flush=True)


def percentiles(samples):
    """seconds -> microsecond percentiles"""
    n = len(samples)
    if not n:
        return {"count": 0}
    s = sorted(samples)
    q = lambda p: round(s[min(n - 1, int(p * n))] * 1e6, 1)  # noqa: E731
    return {"count": n, "mean": round(sum(s) / n * 1e6, 1), "p50": q(0.50), "p90": q(0.90),
            "p99": q(0.99), "p999": q(0.999), "max": round(s[-1] * 1e6, 1)}


def payload_of(size):
    return bytes(97 + i % 26 for i in range(size))


# ----------------------------------------------------------------------------- picows client

def picows_conn_class():
    from picows import WSCloseCode, WSListener, WSMsgType

    class Conn(WSListener):
        """one connection; on_msg(size, frame) per complete message"""

        def __init__(self):
            self.t = None
            self.acc = 0
            self.sent = deque()
            self.on_msg = None

        def on_ws_connected(self, transport):
            self.t = transport

        def on_ws_frame(self, transport, frame):
            kind = frame.msg_type
            if kind in (WSMsgType.BINARY, WSMsgType.TEXT, WSMsgType.CONTINUATION):
                self.acc += frame.payload_size
                if frame.fin:
                    size, self.acc = self.acc, 0
                    if self.on_msg is not None:
                        self.on_msg(size, frame)
            elif kind == WSMsgType.CLOSE:
                code = frame.get_close_code()  # picows says 0 for "no code": answer 1000 instead
                if not closing:
                    note_error(f"close frame from the target: {code} {frame.get_close_message()!r}")
                transport.send_close(code if code != WSCloseCode.NO_INFO else WSCloseCode.OK)
                transport.disconnect()

        def on_ws_disconnected(self, transport):
            if not closing:
                stats["unexpected_closes"] += 1

    return Conn


async def open_picows(args, n):
    from picows import ws_connect
    Conn = picows_conn_class()
    sem = asyncio.Semaphore(args.connect_concurrency)
    conns, failed = [], 0

    async def one():
        nonlocal failed
        async with sem:
            try:
                _, c = await asyncio.wait_for(
                    ws_connect(Conn, args.url, websocket_handshake_timeout=args.connect_timeout,
                               max_frame_size=256 << 20), args.connect_timeout + 1)
                if c is None or c.t is None:
                    raise ConnectionError("closed during the handshake")
                conns.append(c)
            except Exception as e:  # noqa: BLE001 - counted and reported
                failed += 1
                note_error(e)
    await asyncio.gather(*(one() for _ in range(n)))
    return conns, failed


async def close_picows(conns):
    global closing
    closing = True
    for c in conns:
        if c.t is not None and not c.t.is_disconnected:
            c.t.disconnect(graceful=False)
    await asyncio.sleep(0.05)


async def throughput_picows(args):
    from picows import WSMsgType
    payload, size = payload_of(args.size), args.size
    t0 = now()
    conns, failed = await open_picows(args, args.conns)
    connect_s = now() - t0
    base = {"mode": "throughput", "client": "picows", "url": args.url, "conns": args.conns, "size": size,
            "connected": len(conns), "connect_failed": failed, "connect_s": round(connect_s, 2)}
    if not conns:
        return emit(dict(base, msgs_per_s=0.0), "throughput: no connection could be opened")
    st = {"count": 0, "phase": 0}
    rtt = []

    def on_msg(c, n, frame):
        t = now()
        st["count"] += 1
        if n != size:
            note_error(f"echo length {n} != {size}")
        elif (st["count"] & 255) == 0 and frame.payload_size == n and frame.get_payload_as_memoryview() != payload:
            note_error("echo content differs from what was sent")
        ts = c.sent.popleft()
        if st["phase"] == 1:
            rtt.append(t - ts)
        if st["phase"] < 2:
            c.sent.append(now())
            c.t.send(WSMsgType.BINARY, payload)

    for c in conns:
        c.on_msg = on_msg.__get__(c)
        c.sent.append(now())
        c.t.send(WSMsgType.BINARY, payload)
    await asyncio.sleep(args.warmup)
    gc.disable()
    st["phase"] = 1
    event("measure_start")
    c0, tm0 = st["count"], now()
    await asyncio.sleep(args.duration)
    c1, tm1 = st["count"], now()
    event("measure_end")
    st["phase"] = 2
    gc.enable()
    await asyncio.sleep(0.2)  # let the last echoes arrive
    await close_picows(conns)
    secs, msgs = tm1 - tm0, c1 - c0
    res = dict(base, duration_s=round(secs, 3), msgs=msgs, msgs_per_s=round(msgs / secs, 1),
               mbytes_per_s=round(msgs * size / secs / 1e6, 2), rtt_us=percentiles(rtt))
    emit(res, f"throughput {args.url} picows conns={len(conns)} size={size}: {res['msgs_per_s']} msg/s, "
              f"rtt p50={res['rtt_us'].get('p50')}us p99={res['rtt_us'].get('p99')}us")


async def latency_picows(args):
    from picows import WSMsgType
    payload, size = payload_of(args.size), args.size
    conns, failed = await open_picows(args, args.conns)
    n = len(conns)
    if not n:
        return emit({"mode": "latency", "url": args.url, "connected": 0, "connect_failed": failed},
                    "latency: no connection could be opened")
    lat = []
    st = {"sent": 0, "recv": 0, "sent_measured": 0}

    def on_msg(c, m, frame):
        t = now()
        st["recv"] += 1
        if m != size:
            note_error(f"echo length {m} != {size}")
        if c.sent:
            ts, measured = c.sent.popleft()
            if measured:
                lat.append(t - ts)

    interval = n / args.rate  # per connection
    t_start = now()
    for i, c in enumerate(conns):
        c.on_msg = on_msg.__get__(c)
        c.due = t_start + i * interval / n  # staggered: the total rate is even
    warm_end = t_start + args.warmup
    end = warm_end + args.duration
    measuring, max_out, tm0 = False, 0, None
    gc.disable()
    while True:
        t = now()
        if t >= end:
            break
        if not measuring and t >= warm_end:
            measuring, tm0 = True, t
            event("measure_start")
        out = 0
        for c in conns:
            while c.due <= t:
                c.due += interval
                c.sent.append((now(), measuring))
                c.t.send(WSMsgType.BINARY, payload)
                st["sent"] += 1
                st["sent_measured"] += measuring
            out += len(c.sent)
        max_out = max(max_out, out)
        await asyncio.sleep(min(0.001, max(0.0, end - now())))
    secs = now() - tm0
    event("measure_end")
    gc.enable()
    drain_end = now() + 3
    while st["recv"] < st["sent"] and now() < drain_end:
        await asyncio.sleep(0.01)
    await close_picows(conns)
    res = {"mode": "latency", "client": "picows", "url": args.url, "conns": args.conns, "connected": n,
           "connect_failed": failed, "size": size, "rate_target": args.rate,
           "rate_achieved": round(st["sent_measured"] / secs, 1), "duration_s": round(secs, 3),
           "msgs": st["sent_measured"], "sent": st["sent"], "received": st["recv"],
           "lost": st["sent"] - st["recv"], "max_outstanding": max_out, "lat_us": percentiles(lat)}
    r = res["lat_us"]
    emit(res, f"latency {args.url} {res['rate_achieved']}/s: p50={r.get('p50')}us p99={r.get('p99')}us "
              f"max={r.get('max')}us lost={res['lost']}")


# ----------------------------------------------------------------------------- websockets client

async def open_websockets(args, n):
    from websockets.asyncio.client import connect
    sem = asyncio.Semaphore(args.connect_concurrency)
    conns, failed = [], 0

    async def one():
        nonlocal failed
        async with sem:
            try:
                ws = await asyncio.wait_for(
                    connect(args.url, compression=None, max_size=256 << 20, ping_interval=None,
                            open_timeout=args.connect_timeout), args.connect_timeout + 1)
                conns.append(ws)
            except Exception as e:  # noqa: BLE001 - counted and reported
                failed += 1
                note_error(e)
    await asyncio.gather(*(one() for _ in range(n)))
    return conns, failed


async def close_websockets(conns):
    global closing
    closing = True
    for ws in conns:
        ws.transport.abort()
    await asyncio.sleep(0.05)


async def throughput_websockets(args):
    payload, size = payload_of(args.size), args.size
    t0 = now()
    conns, failed = await open_websockets(args, args.conns)
    connect_s = now() - t0
    base = {"mode": "throughput", "client": "websockets", "url": args.url, "conns": args.conns, "size": size,
            "connected": len(conns), "connect_failed": failed, "connect_s": round(connect_s, 2)}
    if not conns:
        return emit(dict(base, msgs_per_s=0.0), "throughput: no connection could be opened")
    st = {"count": 0, "phase": 0}
    rtt = []

    async def loop(ws):
        try:
            while st["phase"] < 2:
                ts = now()
                await ws.send(payload)
                got = await ws.recv()
                t = now()
                st["count"] += 1
                if len(got) != size:
                    note_error(f"echo length {len(got)} != {size}")
                if st["phase"] == 1:
                    rtt.append(t - ts)
        except Exception as e:  # noqa: BLE001
            if not closing:
                stats["unexpected_closes"] += 1
                note_error(e)

    tasks = [asyncio.ensure_future(loop(ws)) for ws in conns]
    await asyncio.sleep(args.warmup)
    gc.disable()
    st["phase"] = 1
    event("measure_start")
    c0, tm0 = st["count"], now()
    await asyncio.sleep(args.duration)
    c1, tm1 = st["count"], now()
    event("measure_end")
    st["phase"] = 2
    gc.enable()
    await asyncio.wait(tasks, timeout=1)
    await close_websockets(conns)
    for task in tasks:
        task.cancel()
    secs, msgs = tm1 - tm0, c1 - c0
    res = dict(base, duration_s=round(secs, 3), msgs=msgs, msgs_per_s=round(msgs / secs, 1),
               mbytes_per_s=round(msgs * size / secs / 1e6, 2), rtt_us=percentiles(rtt))
    emit(res, f"throughput {args.url} websockets conns={len(conns)} size={size}: {res['msgs_per_s']} msg/s")


# ----------------------------------------------------------------------------- idle connections

async def hold(args):
    t0 = now()
    if args.client == "websockets":
        conns, failed = await open_websockets(args, args.conns)
    else:
        conns, failed = await open_picows(args, args.conns)
    open_s = now() - t0
    ready = {"event": "ready", "connected": len(conns), "connect_failed": failed, "connect_s": round(open_s, 2),
             "connects_per_s": round(len(conns) / open_s, 1) if open_s else None, "errors": stats["errors"]}
    if stats["first_error"]:
        ready["first_error"] = stats["first_error"]
    print(json.dumps(ready), flush=True)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    release = lambda *_: done.done() or done.set_result(None)  # noqa: E731
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, release)
    try:  # the driver holds our stdin: EOF means release
        loop.add_reader(sys.stdin.fileno(), lambda: (sys.stdin.buffer.raw.read(4096) or b"") or release())
    except (OSError, ValueError, AttributeError):
        pass
    try:
        await asyncio.wait_for(done, args.hold)
    except asyncio.TimeoutError:
        pass
    if args.client == "websockets":
        alive = sum(1 for ws in conns if ws.transport is not None and not ws.transport.is_closing())
        await close_websockets(conns)
    else:
        alive = sum(1 for c in conns if c.t is not None and not c.t.is_disconnected)
        await close_picows(conns)
    emit({"mode": "hold", "client": args.client, "url": args.url, "conns": args.conns, "connected": len(conns),
          "connect_failed": failed, "connect_s": round(open_s, 2), "still_open_at_release": alive},
         f"hold {args.url}: {len(conns)} opened, {alive} still open at release")


# ----------------------------------------------------------------------------- connect rate

def proc_cpu_s(pids):
    """utime + stime of some processes (comma-separated PIDs), seconds (/proc/PID/stat)"""
    total = 0
    for pid in str(pids).split(","):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def connects(args):
    """Windows of --conns WebSocket handshakes (raw sockets: the client costs little), held open while
    the window is measured, then closed, and a pause; relay CPU per connect = the relay's utime+stime
    over the opening / connects. Median over --windows."""
    u = urlparse(args.url)
    port, path = u.port or 80, u.path or "/"
    head = (f"GET {path} HTTP/1.1\r\nHost: {u.hostname}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode()
    sem = asyncio.Semaphore(args.connect_concurrency)

    async def one(held):
        async with sem:
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(u.hostname, port), args.connect_timeout)
                w.write(head)
                line = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), args.connect_timeout)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
                note_error(type(e).__name__)
                return False
            held.append(w)
            if not line.startswith(b"HTTP/1.1 101"):
                note_error(line.split(b"\r\n", 1)[0].decode("latin-1"))
                return False
            return True

    windows = []
    for i in range(args.windows + 1):   # the first one warms up, unmeasured
        held = []
        c0, t0 = proc_cpu_s(args.relay_pid), now()
        ok = sum(await asyncio.gather(*(one(held) for _ in range(args.conns))))
        t1, c1 = now(), proc_cpu_s(args.relay_pid)
        for w in held:
            w.transport.abort()
        if i:
            windows.append({"connected": ok, "wall_s": round(t1 - t0, 3),
                            "cpu_us_per_connect": round((c1 - c0) * 1e6 / ok, 1) if ok else None,
                            "connects_per_s": round(ok / (t1 - t0), 1)})
            event("window", **windows[-1])
        await asyncio.sleep(args.pause)
    cpu = sorted(w["cpu_us_per_connect"] for w in windows if w["cpu_us_per_connect"])
    rate = sorted(w["connects_per_s"] for w in windows)
    emit({"mode": "connects", "url": args.url, "conns": args.conns, "windows": windows,
          "cpu_us_per_connect": cpu[len(cpu) // 2] if cpu else None,
          "connects_per_s": rate[len(rate) // 2] if rate else None},
         f"connects: median relay CPU {cpu[len(cpu) // 2] if cpu else '-'} us/connect, "
         f"{rate[len(rate) // 2] if rate else '-'} connects/s")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["throughput", "latency", "hold", "connects"])
    p.add_argument("--url", required=True)
    p.add_argument("--client", choices=["picows", "websockets"], default="picows")
    p.add_argument("--conns", type=int, default=64)
    p.add_argument("--size", type=int, default=1024, help="payload bytes per message")
    p.add_argument("--duration", type=float, default=3, help="measured seconds")
    p.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds before")
    p.add_argument("--rate", type=float, default=2000, help="latency: total messages per second")
    p.add_argument("--hold", type=float, default=120, help="hold: release after this many seconds at most")
    p.add_argument("--connect-concurrency", type=int, default=200)
    p.add_argument("--connect-timeout", type=float, default=15)
    p.add_argument("--windows", type=int, default=7, help="connects: measured windows (one more warms up)")
    p.add_argument("--pause", type=float, default=1.0, help="connects: seconds between windows")
    p.add_argument("--relay-pid", required=False, help="connects: the relay's PID(s), comma-separated, whose CPU is read")
    p.add_argument("--max-seconds", type=int, default=300, help="hard stop (SIGALRM)")
    args = p.parse_args()
    host = urlparse(args.url).hostname or ""
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        raise SystemExit(f"wsload.py: refusing a non-loopback target {host!r}")
    signal.alarm(args.max_seconds)
    if args.client == "websockets" and args.mode == "latency":
        raise SystemExit("wsload.py: --client websockets does throughput and hold only")
    job = {"throughput": throughput_websockets if args.client == "websockets" else throughput_picows,
           "latency": latency_picows, "hold": hold,
           "connects": connects}[args.mode]
    uvloop.run(job(args))


if __name__ == "__main__":
    main()
