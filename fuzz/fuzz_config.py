"""
The config parser (wsrelay/config.py) on arbitrary text: it gives a
RelayConfig or a ConfigError whose one line names the file first; any other
exception is a crash. A config it accepts routes any Host without raising.
"""

import atheris

from common import run

with atheris.instrument_imports(include=["wsrelay"]):
    from wsrelay import config
    from wsrelay.selectors import installed

PATH = "/nonexistent/fuzz.ini"   # relative PEM paths resolve under a folder that is not there
_selectors = installed()
config._installed_selectors = lambda path: _selectors  # found once: scanning plugins is 20 ms a call


HOSTS = ("chat.example.com", "a.example.com", "x.test:8080", "[2001:db8::1]:80", "", "ÉX.test.", "1.2.3.4")


def test_one_input(data):
    text = data.decode("utf-8", "replace")
    host = HOSTS[len(data) % len(HOSTS)]
    try:
        parsed = config.parse_config(text, PATH, now=1.8e9)
    except config.ConfigError as e:
        message = str(e)
        assert message.startswith(PATH) and "\n" not in message, message
        return
    parsed.domain_for(host)
    parsed.domain_for(None)


if __name__ == "__main__":
    run(test_one_input)
