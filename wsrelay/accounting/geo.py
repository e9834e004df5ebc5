"""
Region and ISP of a client address, from MaxMind-format databases read with
the `maxminddb` package (memory-mapped, so a lookup does no I/O per call).

Region: ISO country code, with the first subdivision when the city database
has one ("US-CA"), else the country ("US"). ISP: the autonomous system's
organisation ("Example Telecom"), else "AS64500". Loopback, private,
link-local and other non-global addresses: "private". No database, or no
answer in it: "unknown".
"""

import ipaddress
from functools import lru_cache

UNKNOWN = "unknown"
PRIVATE = "private"


class Locator:
    """(region, isp) of an address; each database is optional (None: every answer is unknown)."""

    def __init__(self, city_db=None, asn_db=None):
        self._city = _open(city_db)
        self._asn = _open(asn_db)
        self.locate = lru_cache(maxsize=65536)(self._locate)

    def _locate(self, address):
        try:
            ip = ipaddress.ip_address(address)
        except (TypeError, ValueError):
            return UNKNOWN, UNKNOWN
        if not ip.is_global:
            return PRIVATE, PRIVATE
        return _region(_get(self._city, address)), _isp(_get(self._asn, address))

    def close(self):
        for reader in (self._city, self._asn):
            if reader is not None:
                reader.close()


def _open(path):
    if not path:
        return None
    import maxminddb

    return maxminddb.open_database(path)


def _get(reader, address):
    if reader is None:
        return None
    try:
        return reader.get(address)
    except ValueError:
        return None


def _region(record):
    if not isinstance(record, dict):
        return UNKNOWN
    country = (record.get("country") or record.get("registered_country") or {}).get("iso_code")
    if not country:
        return UNKNOWN
    subdivisions = record.get("subdivisions") or []
    sub = subdivisions[0].get("iso_code") if subdivisions else None
    return f"{country}-{sub}" if sub else country


def _isp(record):
    if not isinstance(record, dict):
        return UNKNOWN
    name = record.get("autonomous_system_organization") or record.get("isp")
    if name:
        return str(name)
    number = record.get("autonomous_system_number")
    return f"AS{number}" if number else UNKNOWN


def check_database(path):
    """An error message when `path` is not a readable MaxMind database, else None."""
    try:
        _open(path).close()
    except Exception as e:  # maxminddb raises InvalidDatabaseError, OSError, ...
        return str(e) or e.__class__.__name__
    return None
