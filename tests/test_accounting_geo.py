"""Region and ISP of client addresses, from MaxMind databases generated with mmdb-writer."""

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from wsrelay.accounting.geo import Locator
from wsrelay.config import ConfigError, parse_config


def write_databases(tmp_path):
    city = MMDBWriter(ip_version=6, database_type="GeoIP2-City", ipv4_compatible=True)
    city.insert_network(IPSet(["81.2.69.0/24"]), {
        "country": {"iso_code": "US"}, "subdivisions": [{"iso_code": "CA"}]})
    city.insert_network(IPSet(["89.160.20.0/24"]), {"country": {"iso_code": "DE"}})
    asn = MMDBWriter(ip_version=6, database_type="GeoLite2-ASN", ipv4_compatible=True)
    asn.insert_network(IPSet(["81.2.69.0/24"]), {
        "autonomous_system_number": 64500, "autonomous_system_organization": "Example Telecom"})
    asn.insert_network(IPSet(["89.160.20.0/24"]), {"autonomous_system_number": 64501})
    paths = tmp_path / "city.mmdb", tmp_path / "asn.mmdb"
    city.to_db_file(str(paths[0]))
    asn.to_db_file(str(paths[1]))
    return paths


def test_region_and_isp_come_from_the_databases(tmp_path):
    city, asn = write_databases(tmp_path)
    locator = Locator(str(city), str(asn))
    assert locator.locate("81.2.69.7") == ("US-CA", "Example Telecom")
    assert locator.locate("89.160.20.1") == ("DE", "AS64501")
    assert locator.locate("8.8.8.8") == ("unknown", "unknown")      # not in the databases


def test_private_and_loopback_addresses_are_private():
    locator = Locator()
    for address in ("127.0.0.1", "10.1.2.3", "192.168.0.9", "::1", "fe80::1"):
        assert locator.locate(address) == ("private", "private")
    assert locator.locate("81.2.69.7") == ("unknown", "unknown")  # no databases configured


def test_the_databases_are_named_in_relay_and_checked_at_load(tmp_path):
    city, asn = write_databases(tmp_path)
    config = parse_config(f"[relay]\ngeoip_city_db = {city}\ngeoip_asn_db = asn.mmdb\n"
                          "[domain:*]\norigins = a:1\n", str(tmp_path / "relay.ini"))
    assert config.accounting.geoip_asn_db == str(asn)
    (tmp_path / "bad.mmdb").write_bytes(b"not a database")
    with pytest.raises(ConfigError, match=r"\[relay\] geoip_city_db: .*bad.mmdb is not a readable MaxMind"):
        parse_config("[relay]\ngeoip_city_db = bad.mmdb\n[domain:*]\norigins = a:1\n",
                     str(tmp_path / "relay.ini"))
