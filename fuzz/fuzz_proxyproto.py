"""
The PROXY protocol v1/v2 parser (wsrelay/proxyproto.py) on arbitrary bytes:
it answers a Header, None (wait for more) or ProxyHeaderError, nothing else;
a Header does not depend on the bytes after it, its prefixes wait for more,
and what it names is written back by v1_header/v2_header to the same Header.
"""

import atheris

from common import run

with atheris.instrument_imports(include=["wsrelay"]):
    from wsrelay.edge.proxyproto import Header, ProxyHeaderError, parse_header, v1_header, v2_header


def parse(data):
    try:
        return parse_header(data)
    except ProxyHeaderError as e:
        return e


def test_one_input(data):
    result = parse(data)
    assert result is None or isinstance(result, (Header, ProxyHeaderError)), result
    if not isinstance(result, Header):
        return
    assert 0 < result.length <= len(data)
    assert parse(data[:result.length]) == result
    cut = len(data) % result.length  # a shorter prefix waits for more
    if 0 < cut < result.length:
        assert parse(data[:cut]) is None, (data[:cut], parse(data[:cut]))
    if result.command == "proxy":
        written = (v1_header if result.version == 1 else v2_header)(result.source, result.destination)
        again = parse(written)
        assert isinstance(again, Header)
        assert (again.source, again.destination) == (result.source, result.destination)


if __name__ == "__main__":
    run(test_one_input)
