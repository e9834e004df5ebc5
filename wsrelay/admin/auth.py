"""
Who may use the admin endpoint: a bearer token (scripts, Prometheus), or the
dashboard's cookie, obtained once by posting that token to /login.

The cookie holds no state on the relay: it is `EXPIRY.SIGNATURE`, an HMAC of
the expiry under the admin token, so it survives a restart and dies with a
token change. It is HttpOnly and SameSite=Strict (Secure over TLS). A request
that changes something (DELETE) and is authorised by the cookie must also
carry the CSRF token the page was given (X-CSRF-Token), an HMAC of the cookie
under the admin token, and any Origin header it has must be the endpoint's own.
"""

import hashlib
import hmac

COOKIE = b"wsrelay_admin"
LIFETIME = 12 * 3600  # seconds a dashboard login lasts
SAFE_METHODS = (b"GET", b"HEAD")


def bearer_ok(header, token):
    """Whether an Authorization header value carries `token` (bytes), compared in constant time."""
    if not header or not token:
        return False
    scheme, _, given = header.partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return hmac.compare_digest(given.strip(), token)


def _sign(token, what):
    return hmac.new(token, what, hashlib.sha256).hexdigest().encode("ascii")


def new_cookie(token, now):
    """A login cookie's value, valid for LIFETIME from `now`."""
    expiry = str(int(now + LIFETIME)).encode("ascii")
    return expiry + b"." + _sign(token, b"login|" + expiry)


def cookie_ok(value, token, now):
    """Whether a login cookie's value is one of ours and not expired."""
    if not value or not token:
        return False
    expiry, _, signature = value.partition(b".")
    if not expiry.isdigit() or int(expiry) < now:
        return False
    return hmac.compare_digest(signature, _sign(token, b"login|" + expiry))


def csrf_of(cookie, token):
    """The CSRF token that goes with a login cookie (given to the page, sent back on DELETE)."""
    return _sign(token, b"csrf|" + cookie).decode("ascii")


def same_origin(request):
    """False when the request says it comes from a page of another origin (Origin header)."""
    origin = request.getHeader(b"origin")
    if origin is None:
        return True
    host = request.getHeader(b"host") or b""
    scheme = b"https" if request.isSecure() else b"http"
    return origin.lower() == scheme + b"://" + host.lower()


def authorised(request, token, now):
    """
    'bearer', 'cookie' or None. A cookie authorises a request that changes
    something only with its CSRF token, from the endpoint's own origin.
    """
    if bearer_ok(request.getHeader(b"authorization"), token):
        return "bearer"
    cookie = request.getCookie(COOKIE)
    if not cookie_ok(cookie, token, now):
        return None
    if request.method not in SAFE_METHODS:
        given = (request.getHeader(b"x-csrf-token") or b"").decode("ascii", "replace")
        if not same_origin(request) or not hmac.compare_digest(given, csrf_of(cookie, token)):
            return None
    return "cookie"


def set_login_cookie(request, token, now):
    """Give the browser its login cookie; returns the cookie's value."""
    value = new_cookie(token, now)
    request.addCookie(COOKIE, value, path=b"/", max_age=str(LIFETIME).encode(), httpOnly=True,
                      secure=request.isSecure(), sameSite="strict")
    return value


def clear_login_cookie(request):
    request.addCookie(COOKIE, b"", path=b"/", max_age=b"0", httpOnly=True, secure=request.isSecure(),
                      sameSite="strict")
