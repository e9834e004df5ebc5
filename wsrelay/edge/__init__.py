"""
The client side and the relaying: the two WebSocket legs and their session, frames, closes,
compression and clocks, the handshake's HTTP, admission limits, the PROXY protocol header,
HTTP/2 at the edge and the HTTP pass-through. Nothing here imports wsrelay.process or the admin.
"""
