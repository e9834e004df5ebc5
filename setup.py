import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "wsrelay" / "__init__.py").read_text(), re.M).group(1)

setup(
    name="wsrelay",
    version=VERSION,
    description="A self-hosted WebSocket edge relay (a twistd plugin)",
    python_requires=">=3.11",
    # Every wsrelay package, found by setuptools (a package listed by hand was once left
    # out of the wheel). twisted.plugins has no __init__.py on purpose: it is Twisted's
    # plugin directory, shared with every other installed plugin, so it is named as it is.
    packages=find_packages(include=["wsrelay", "wsrelay.*"]) + ["twisted.plugins"],
    package_data={"wsrelay": ["*.html", "**/*.html"], "wsrelay.admin": ["static/*"]},
    install_requires=[
        "Twisted>=24.7",
        # 26.7.1 checks the message-size limit after inflation (GHSA-hxp9-w8x3-p566);
        # the relay overrides a few handshake hooks, so stay on the 26 series.
        "autobahn[twisted]>=26.7.1,<27",
        "pyOpenSSL>=24",
        "service-identity>=24",
        "zope.interface>=6",
        "maxminddb>=2.5",  # region and ISP of client addresses (geoip_city_db, geoip_asn_db)
        "prometheus_client>=0.20",  # /metrics on the admin endpoint
        "plotly>=5.20",  # its wheel ships plotly.min.js: the dashboard's charts, served offline
        "h2>=4.1,<5",  # HTTP/2 at the edge (http2 = on): the state machine, extended CONNECT (RFC 8441)
        "hyperframe>=6.1,<7",  # h2's frames: the graceful GOAWAY written at a drain
    ],
    extras_require={
        # accounting = postgresql (psycopg 3 with its own libpq)
        "postgresql": ["psycopg[binary]>=3.1,<4"],
        "test": ["pytest>=8", "websockets>=13", "mmdb-writer>=0.2", "jsonschema>=4", "PyYAML>=6",
                 "aiohttp>=3.9", "python-socketio>=5.11",
                 "psycopg[binary]>=3.1,<4", "build>=1", "wheel",
                 "playwright>=1.40",     # drives Debian's chromium (scripts/install-browser), never its own
                 "atheris>=2.3",         # the fuzz/ harnesses, run briefly by tests/test_fuzz.py
                 "schemathesis>=3.30"],  # docs/openapi.yaml against a live admin API
    },
    entry_points={"console_scripts": ["wsrelay-stats = wsrelay.accounting.cli:run"]},
)
