from setuptools import setup

setup(
    name="wsrelay",
    version="0.1.0",
    description="A self-hosted WebSocket edge relay (a twistd plugin)",
    python_requires=">=3.11",
    packages=["wsrelay", "wsrelay.selectors", "wsrelay.accounting", "wsrelay.admin", "twisted.plugins"],
    package_data={"wsrelay": ["demo_page.html"], "wsrelay.admin": ["static/*"]},
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
    ],
    extras_require={
        # accounting = postgresql (psycopg 3 with its own libpq)
        "postgresql": ["psycopg[binary]>=3.1,<4"],
        "test": ["pytest>=8", "websockets>=13", "mmdb-writer>=0.2", "jsonschema>=4", "PyYAML>=6",
                 "psycopg[binary]>=3.1,<4",
                 "playwright>=1.40"],  # drives Debian's chromium (scripts/install-browser), never its own
    },
    entry_points={"console_scripts": ["wsrelay-stats = wsrelay.accounting.cli:run"]},
)
