"""
The dashboard: one page (static/dashboard.html, .js, .css, shipped in the
package) that reads the same JSON API as any script, with its charts drawn
by plotly.js, served from the installed `plotly` Python package (its wheel
ships plotly.min.js): nothing is fetched from the internet, nothing
third-party is in this repository.

GET / without a valid login cookie answers the login form; POST /login with
the admin token sets the cookie (wsrelay.admin.auth) and goes back to /;
POST /logout clears it. The page gets its CSRF token in a meta tag.
"""

import hmac
from importlib import resources

from wsrelay.admin import auth

STATIC = "/static/"
FILES = {  # name -> (package, path inside it, content type)
    "dashboard.js": ("wsrelay.admin", "static/dashboard.js", b"text/javascript; charset=utf-8"),
    "dashboard.css": ("wsrelay.admin", "static/dashboard.css", b"text/css; charset=utf-8"),
    "plotly.min.js": ("plotly", "package_data/plotly.min.js", b"text/javascript; charset=utf-8"),
}
# Scripts and styles from this endpoint only; plotly sets inline styles on its own elements.
POLICY = (b"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
          b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_cache = {}


def _read(package, path):
    key = (package, path)
    if key not in _cache:
        _cache[key] = resources.files(package).joinpath(path).read_bytes()
    return _cache[key]


def _page(request, name, replacements=()):
    text = _read("wsrelay.admin", "static/" + name)
    for old, new in replacements:
        text = text.replace(old, new)
    request.setHeader(b"content-type", b"text/html; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    request.setHeader(b"content-security-policy", POLICY)
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"referrer-policy", b"same-origin")  # no-referrer would make Origin "null"
    return text


def _redirect(request, where=b"/"):
    request.setResponseCode(303)
    request.setHeader(b"location", where)
    request.setHeader(b"cache-control", b"no-store")
    return b""


def render(root, request, path):
    """Answer /, /login, /logout and /static/NAME."""
    token, now = root.token, root.clock.seconds()
    if path.startswith(STATIC):
        found = FILES.get(path[len(STATIC):])
        if found is None or request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(404)
            return b"not found\n"
        package, inside, content_type = found
        request.setHeader(b"content-type", content_type)
        request.setHeader(b"cache-control", b"private, max-age=3600")
        request.setHeader(b"x-content-type-options", b"nosniff")
        return _read(package, inside)
    if path == "/login":
        if request.method != b"POST" or not auth.same_origin(request):
            return _redirect(request)
        given = (request.args.get(b"token") or [b""])[0].strip()
        if given and hmac.compare_digest(given, token):
            auth.set_login_cookie(request, token, now)
            return _redirect(request)
        request.setResponseCode(401)
        return _page(request, "login.html", [(b"<!--error-->", b'<p class="error" role="alert">'
                                                               b"That is not the admin token.</p>")])
    if path == "/logout":
        if request.method == b"POST" and auth.same_origin(request):
            auth.clear_login_cookie(request)
        return _redirect(request)
    cookie = request.getCookie(auth.COOKIE)
    if not auth.cookie_ok(cookie, token, now):
        return _page(request, "login.html")
    return _page(request, "dashboard.html",
                 [(b"{{csrf}}", auth.csrf_of(cookie, token).encode("ascii"))])
