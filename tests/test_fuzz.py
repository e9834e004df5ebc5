"""
The fuzz harnesses (fuzz/, atheris) run briefly from the fixed seed corpus in
tests/corpus/ (new inputs go to a temporary folder, the corpus stays as it
is), and the crashes they found, each kept as a regression test.
Longer runs: docs/fuzzing.md.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from twisted.logger import globalLogPublisher

from tests.test_legs import Harness, request
from wsrelay.config import ConfigError, parse_config
from wsrelay.edge.http import status_of

ROOT = Path(__file__).resolve().parent.parent
RUNS = {"http": 3000, "proxyproto": 20000, "config": 3000, "frames": 400}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_harness_runs_clean_from_the_corpus(name, tmp_path):
    pytest.importorskip("atheris", reason="pip install '.[test]' installs atheris")
    new = tmp_path / "new"
    new.mkdir()
    seeds = ROOT / "tests" / "corpus" / name
    assert len(list(seeds.iterdir())) >= 8
    proc = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / f"fuzz_{name}.py"), f"-runs={RUNS[name]}", "-max_total_time=60",
         "-seed=1", f"-artifact_prefix={tmp_path}/", str(new), str(seeds)],
        cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Done {RUNS[name]} runs" in proc.stderr or "Done" in proc.stderr, proc.stderr[-2000:]
    assert not list(tmp_path.glob("crash-*"))


# -- what the fuzzers found ------------------------------------------------------

def test_a_nul_character_in_a_path_is_a_config_error_not_a_traceback():
    """fuzz_config: open() raised ValueError "embedded null byte" out of parse_config."""
    text = "[relay]\nlisten = ssl:443\ncertificate = cer\x02\0\0\0\0\0\0\0em\n[domain:*]\norigins = a:1\n"
    with pytest.raises(ConfigError) as e:
        parse_config(text, "/etc/wsrelay/relay.ini")
    assert str(e.value) == "/etc/wsrelay/relay.ini: [relay] certificate: contains a NUL character"
    with pytest.raises(ConfigError) as e:
        parse_config("[relay]\n[accounting]\ndatabase = a\0b\n[domain:*]\norigins = a:1\n", "r.ini")
    assert str(e.value) == "r.ini: [accounting] database: contains a NUL character"


def test_a_status_code_of_non_ascii_digits_is_no_status():
    """fuzz_http: "10²1".isdigit() is true, and int() of it raised ValueError out of status_of."""
    assert status_of("HTTP/1.1 10\u00b2\u00b21 Switching") is None
    assert status_of("HTTP/1.1 ٢٠٠ OK") is None
    assert status_of("HTTP/1.1 404 Not Found") == 404


def test_an_origin_answering_a_status_of_non_ascii_digits_gives_502_without_a_traceback():
    errors = []

    def observe(event):
        if event.get("log_failure") is not None or event.get("isError"):
            errors.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        h = Harness()
        h.send(request())
        proto, wire = h.connect_origin()
        proto.dataReceived(b"HTTP/1.1 10\xb2\xb21 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
        h.settle(proto, wire)
    finally:
        globalLogPublisher.removeObserver(observe)
    assert h.status() == 502
    assert errors == []


def test_after_a_leg_is_dropped_mid_frame_nothing_more_is_written_or_counted_on_it():
    """
    fuzz_frames: an origin's text frame with invalid UTF-8, more frames in the
    same read. The client leg, mid-frame, is dropped; the rest of the read was
    still copied onto it and counted as sent (statistics over the wire).
    """
    from tests.test_legs import open_session

    h, origin, origin_wire = open_session()
    session = next(iter(h.relay.sessions))
    before = session.client.counters.bytes_out
    origin.dataReceived(b"\x01\x05\xff\xff\xff\xff\xff" + b"\x02\x03abc" + b"\x00\x00" * 3)
    assert h.client_wire.disconnecting                       # dropped: a frame cannot be ended
    assert h.client_wire.value() == b"\x01\x05"              # only the header had gone out
    assert session.client.counters.bytes_out - before == 2   # and only that is counted
