"""
Every config key the code accepts is in etc/relay.ini (with its default) and
in docs/configuration.md. The statistics stores' own keys are checked in
test_accounting_config (commented out but for the default store's).
"""

import re
from pathlib import Path

import pytest

from wsrelay.config import ACCOUNTING_KEYS, DOMAIN_KEYS, RELAY_KEYS
from wsrelay.selectors import installed as installed_selectors

ROOT = Path(__file__).parent.parent
INI = (ROOT / "etc" / "relay.ini").read_text()
DOCS = (ROOT / "docs" / "configuration.md").read_text()
SELECTOR_KEYS = {key for factory in installed_selectors().values() for key in factory.options}
# keys relay.ini names in a comment rather than as a line of their own (they have no single default)
NAMED_IN_A_COMMENT = {"admin_token_file"}


@pytest.mark.parametrize("key", sorted(RELAY_KEYS | DOMAIN_KEYS | ACCOUNTING_KEYS | SELECTOR_KEYS))
def test_every_key_is_in_the_shipped_config_and_the_docs(key):
    pattern = rf"^;? ?{re.escape(key)} =" if key in NAMED_IN_A_COMMENT else rf"^{re.escape(key)} ="
    assert re.search(pattern, INI, re.MULTILINE), f"{key} is missing from etc/relay.ini"
    assert f"`{key}`" in DOCS, f"{key} is missing from docs/configuration.md"
