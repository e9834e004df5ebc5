"""
permessage-deflate (RFC 7692) negotiation for each leg, decided per domain:
`compression` towards clients, `origin_compression` towards origins. The two
legs negotiate independently; the relay inflates and deflates between them.
"""

from autobahn.websocket.compress import (
    PerMessageDeflateOffer, PerMessageDeflateOfferAccept, PerMessageDeflateResponse,
    PerMessageDeflateResponseAccept,
)


def accept_client_offer(offers):
    """Server side: take the client's first permessage-deflate offer as it stands."""
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


def refuse_offers(offers):
    return None


def origin_offers():
    """Client side: what the relay offers an origin when origin_compression is on."""
    return [PerMessageDeflateOffer(accept_no_context_takeover=True, accept_max_window_bits=True)]


def accept_origin_response(response):
    if isinstance(response, PerMessageDeflateResponse):
        return PerMessageDeflateResponseAccept(response)
    return None
