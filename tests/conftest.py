"""Fixtures shared by the tests that run real processes: the relay, a PostgreSQL server."""

import pytest

from tests.pg import PostgresServer
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


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server (tests/pg.py) shared by the whole run; take databases with create_database()."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.remove()


@pytest.fixture
def pg_dsn(postgres):
    """The DSN of a new, empty database on the shared server."""
    return postgres.create_database()


@pytest.fixture
def own_postgres():
    """A PostgreSQL server of the test's own, running, that the test may stop and start."""
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.remove()
