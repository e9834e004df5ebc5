"""Fixtures shared by the tests that run the relay as a real process."""

import pytest

from tests.support import RelayProcess


@pytest.fixture
def make_relay(tmp_path):
    """make_relay(config, start=False): a RelayProcess in its own folder, stopped at the end."""
    relays = []

    def make(config, start=False):
        relay = RelayProcess(tmp_path / f"relay{len(relays)}", config)
        relays.append(relay)
        return relay.start() if start else relay

    yield make
    for relay in relays:
        relay.stop()
