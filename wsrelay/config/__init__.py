"""
The relay's configuration: an INI file turned, once, into immutable values.

Every key is declared once in `schema` (scope, type, default, help); `reader`
parses and validates a file against it at load time, so nothing downstream
sees a string it must interpret; `values` holds what it builds; `render`
writes etc/relay.ini and the key tables of docs/configuration.md from the
schema. A mistake raises ConfigError naming the file, the section and the key,
so an operator can fix it from one line of output.

What callers import (parse_config, load_config, ConfigError, the values, the
listener helpers) is exported here.
"""

from wsrelay.config.reader import (
    ACCOUNTING_KEYS, DEFAULT_SELECTOR, DOMAIN_KEYS, DOMAIN_OVERRIDES, HEALTH_KEYS, MIN_TOKEN, ORIGIN_TLS_KEYS,
    RELAY_KEYS, TLS_KEYS, load_config, parse_config,
)
from wsrelay.config.values import (
    HEALTH_CHECKS, MAX_WEIGHT, ORIGIN_GONE_CODES, PROTOCOLS, AccountingSettings, ConfigError, DomainConfig,
    HealthConfig, Origin, RelayConfig, proxy_protocol_of, split_listener,
)
from wsrelay.hosts import normalize_host

__all__ = [
    "ACCOUNTING_KEYS", "DEFAULT_SELECTOR", "DOMAIN_KEYS", "DOMAIN_OVERRIDES", "HEALTH_KEYS", "MIN_TOKEN",
    "ORIGIN_TLS_KEYS", "RELAY_KEYS", "TLS_KEYS", "HEALTH_CHECKS", "MAX_WEIGHT", "ORIGIN_GONE_CODES",
    "PROTOCOLS", "AccountingSettings", "ConfigError", "DomainConfig", "HealthConfig", "Origin", "RelayConfig",
    "load_config", "normalize_host", "parse_config", "proxy_protocol_of", "split_listener",
]
