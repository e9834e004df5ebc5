"""Echo origin for bench/relay-bench (picows on uvloop). Loopback only.

    python echo_origin.py --port PORT [--lifetime 1800]

Sends every data frame back with the same opcode and FIN bit, answers pings (picows'
auto-pong) and close frames. Prints "READY PORT" once it listens; exits on SIGTERM/SIGINT
or after --lifetime seconds.
"""
import argparse
import asyncio
import signal

import uvloop
from picows import WSCloseCode, WSListener, WSMsgType, ws_create_server

DATA = (WSMsgType.BINARY, WSMsgType.TEXT, WSMsgType.CONTINUATION)


class Echo(WSListener):
    def on_ws_frame(self, transport, frame):
        kind = frame.msg_type
        if kind in DATA:
            transport.send(kind, frame.get_payload_as_memoryview(), frame.fin)
        elif kind == WSMsgType.CLOSE:
            code = frame.get_close_code()  # picows says 0 for "no code", which is not valid on the wire
            transport.send_close(code if code != WSCloseCode.NO_INFO else WSCloseCode.OK, frame.get_close_message())
            transport.disconnect()


async def main(args):
    server = await ws_create_server(lambda request: Echo(), "127.0.0.1", args.port,
                                    max_frame_size=256 << 20, backlog=4096, reuse_address=True)
    print(f"READY {args.port}", flush=True)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, lambda: stop.done() or stop.set_result(None))
    try:
        await asyncio.wait_for(stop, args.lifetime)
    except asyncio.TimeoutError:
        pass
    server.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--lifetime", type=float, default=1800, help="exit by itself after this many seconds")
    uvloop.run(main(p.parse_args()))
