"""
Reading a config file: INI text turned, once, into a RelayConfig.

Each key's value comes through the Kind the schema declares it with; what is
left here is what spans keys: which sections and keys a file may hold, a
domain inheriting [relay]'s values, certificates and CA bundles loaded once per
file, the selector and statistics-store plugins' own options, and the checks
and warnings that compare two keys. A mistake raises ConfigError naming the
file, the section and the key, so an operator can fix it from one line.
"""

import configparser
import dataclasses
import difflib
import ipaddress
import os
import time
from types import MappingProxyType

from wsrelay import tls
from wsrelay.accounting.billing import BillingSettings
from wsrelay.config import schema
from wsrelay.config.values import (
    AccountingSettings, ConfigError, DomainConfig, HealthConfig, RelayConfig, proxy_protocol_of,
    split_listener,
)

DEFAULT_SELECTOR = "round-robin"
MIN_TOKEN = 16  # characters of an admin token
RELAY_KEYS = schema.names("relay")
DOMAIN_KEYS = schema.names("domain")
ACCOUNTING_KEYS = schema.names("accounting")
HEALTH_KEYS = schema.names("relay", "health")
TLS_KEYS = schema.names("relay", "tls")
ORIGIN_TLS_KEYS = ("origin_ca", "origin_verify", "origin_sni")
DOMAIN_OVERRIDES = tuple(key.name for key in schema.keys("domain") if "relay" in key.scope and not key.group
                         and key.name != "http2")
_RELAY_FIELDS = {f.name for f in dataclasses.fields(RelayConfig)}
_DOMAIN_FIELDS = {f.name for f in dataclasses.fields(DomainConfig)}


def _did_you_mean(key, known):
    """'; did you mean X?' for a misspelt key close to one of `known`, else ''."""
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else ""


class Section:
    """One section of the file: its raw text per key, typed through the schema, failing with file/section/key."""

    def __init__(self, path, name, section, scope):
        self.path, self.name, self.section, self.scope = path, name, section, scope

    def fail(self, key, message):
        raise ConfigError(self.path, self.name, key, message)

    def raw(self, key):
        value = self.section.get(key)
        if value is not None and "\0" in value:  # no value has one; as a path it would raise ValueError in open()
            self.fail(key, "contains a NUL character")
        return None if value is None else value.strip()

    def get(self, name, default=schema.Key):
        """The value of key `name`, through its Kind; absent or empty: `default`, else the schema's."""
        key = schema.key(self.scope, name)
        return key.kind.parse(self, name, key.default if default is schema.Key else default)

    def values(self, keys, base=None):
        """{attribute: value} of `keys`, each defaulting to `base`'s attribute when given."""
        return {key.attribute: self.get(key.name, schema.Key if base is None else getattr(base, key.attribute))
                for key in keys}


def _group(scope, group):
    return [key for key in schema.keys(scope) if key.group == group]


def parse_config(text, path="<string>", now=None):
    """
    Parse INI text into a RelayConfig; raise ConfigError on any mistake.
    PEM files are read and checked here, certificate validity against `now`
    (seconds since the epoch; the wall clock when None). Relative PEM paths
    are taken from the directory of `path`.
    """
    now = time.time() if now is None else now
    parser = _read_ini(text, path)
    factories = _installed_selectors(path)
    relay = Section(path, "relay", parser["relay"] if parser.has_section("relay") else {}, "relay")
    for key in relay.section:
        if key not in RELAY_KEYS:
            owners = sorted(n for n, f in factories.items() if key in f.options)
            hint = f" (an option of selector {owners[0]}: set it in [selector:{owners[0]}])" if owners else ""
            relay.fail(key, "unknown key" + (hint or _did_you_mean(key, RELAY_KEYS)))

    plain = [key for key in schema.keys("relay") if not key.group]
    settings = relay.values(plain)
    base = DomainConfig(name="*", **{k: v for k, v in settings.items() if k in _DOMAIN_FIELDS})
    default_selector = _selector_factory(relay, "selector", factories, relay.raw("selector") or DEFAULT_SELECTOR)
    base_health = _parse_health(relay, HealthConfig())
    base_billing = BillingSettings(**relay.values(_group("relay", "billing"), BillingSettings()))
    selector_sections = _selector_sections(path, parser, factories)
    loaded, bundles = {}, {}
    default_certificate = _server_certificate(relay, now, loaded)

    warnings = []
    in_use = {}
    domains, wildcards, catch_all = {}, {}, None
    for name in parser.sections():
        if not name.startswith("domain:"):
            continue
        domain, factory, serves = _parse_domain(path, name, parser[name], base, factories, default_selector,
                                                selector_sections, base_health, base_billing, now, loaded,
                                                bundles, warnings)
        if serves:
            in_use[factory.name] = factory
        if domain.name == "*":
            catch_all = domain
        elif domain.name.startswith("*."):
            wildcards[domain.name[2:]] = domain
        else:
            domains[domain.name] = domain
    if not (domains or wildcards or catch_all):
        raise ConfigError(path, None, None, "no [domain:NAME] section: the relay would answer every request 404")

    listen = settings["listen"]
    tls_listeners = [word for word in listen if tls.parse_tls_listener(split_listener(word)[0]) is not None]
    if tls_listeners and not loaded:  # loaded: the default and every domain's certificates
        relay.fail("listen", f"{tls_listeners[0]!r} is a TLS listener but no certificate is configured "
                             "(certificate = in [relay] or in a [domain:...])")
    if loaded and not tls_listeners:
        warnings.append(f"{path}: [relay] listen: certificates are configured but no listener is TLS "
                        "(ssl:PORT): they are not used")
    proxied = [word for word in listen if proxy_protocol_of(word)]
    if proxied and not settings["trusted_proxies"]:
        relay.fail("listen", f"{proxied[0]!r}: proxy_protocol=on takes the PROXY header only from "
                             "trusted_proxies, and trusted_proxies is empty")

    workers = settings["workers"]
    settings["workers"] = workers = workers if workers is not None else max(1, len(os.sched_getaffinity(0)))
    if workers > 1:
        for word in listen:
            if not split_listener(word)[0].lower().startswith(("tcp:", "tcp6:", "ssl:")):
                relay.fail("workers", f"{workers} workers share tcp:, tcp6: and ssl: listeners only "
                                      f"(SO_REUSEPORT), not {word!r}")
    drain_window, drain_timeout = settings["drain_window"], settings["drain_timeout"]
    if drain_window > drain_timeout:
        warnings.append(f"{path}: [relay] drain_window ({drain_window:g}) is longer than drain_timeout "
                        f"({drain_timeout:g}): at SIGTERM the sessions left after drain_timeout are closed at once")

    return RelayConfig(
        path=path,
        domains=domains,
        wildcards=wildcards,
        catch_all=catch_all,
        warnings=tuple(warnings),
        selectors=MappingProxyType(in_use),
        certificate=default_certificate,
        accounting=_parse_accounting(path, parser, relay),
        **{k: v for k, v in settings.items() if k in _RELAY_FIELDS},
    )


def _read_ini(text, path):
    """The ConfigParser of the file, its syntax and section names checked."""
    parser = configparser.ConfigParser(
        interpolation=None,
        inline_comment_prefixes=(";", "#"),
        comment_prefixes=(";", "#"),
        default_section="\0none",
        strict=True,
        empty_lines_in_values=False,
    )
    try:
        parser.read_string(text, source=path)
    except configparser.DuplicateSectionError as e:
        raise ConfigError(path, e.section, None, "section appears twice")
    except configparser.DuplicateOptionError as e:
        raise ConfigError(path, e.section, e.option, "key appears twice in the section")
    except configparser.MissingSectionHeaderError as e:
        raise ConfigError(path, None, None, f"line {e.lineno}: a key before any [section]")
    except configparser.Error as e:
        raise ConfigError(path, None, None, str(e).splitlines()[0])
    for name in parser.sections():
        if name not in ("relay", "accounting") and not name.startswith(("domain:", "selector:")):
            raise ConfigError(path, name, None, "unknown section (expected [relay], [accounting], "
                                                "[domain:NAME] or [selector:NAME])")
    return parser


def _parse_domain(path, name, section, base, factories, default_selector, selector_sections, base_health,
                  base_billing, now, loaded, bundles, warnings):
    """One [domain:...] section -> (DomainConfig, its selector factory, whether it relays anything)."""
    pattern = _check_domain_name(path, name)
    reader = Section(path, name, section, "domain")
    factory = _selector_factory(reader, "selector", factories) if reader.raw("selector") else default_selector
    for key in reader.section:
        if key not in DOMAIN_KEYS and key not in factory.options:
            owners = sorted(n for n, f in factories.items() if key in f.options)
            hint = f" (an option of selector {', '.join(owners)}; this domain uses {factory.name})"
            reader.fail(key, "unknown key" + (hint if owners else _did_you_mean(key, DOMAIN_KEYS | set(factory.options))))
    websocket = reader.get("websocket")
    serve_http = reader.get("http")
    origins = reader.get("origins")
    if websocket and not origins:
        reader.fail("origins", "at least one origin (host[:port]) is required while websocket = on")
    if serve_http and not origins:
        reader.fail("origins", "at least one origin (host[:port]) is required while http = on")
    values = {}
    for key in schema.keys("domain"):
        if not key.group and key.name not in ("websocket", "http", "origins"):
            values[key.attribute] = reader.get(key.name, getattr(base, key.attribute) if "relay" in key.scope
                                               else schema.Key)
    if pattern == "*" or _is_address(pattern):
        for key in ("certificate", "private_key"):
            if reader.raw(key):
                reader.fail(key, "clients never ask for this section by name (SNI): "
                                 "set the default certificate in [relay] instead")
    certificate = _server_certificate(reader, now, loaded)
    domain = DomainConfig(
        name=pattern,
        websocket=websocket,
        http=serve_http,
        origins=origins,
        selector=factory.name,
        selector_options=_selector_options(reader, factory, selector_sections.get(factory.name)),
        health=_parse_health(reader, base_health),
        certificate=certificate,
        origin_ca=_origin_ca(reader, bundles),
        billing=BillingSettings(**reader.values(_group("domain", "billing"), base_billing)),
        **values,
    )
    warnings.extend(_timeout_warnings(f"{path}: [{name}]", domain))
    warnings.extend(_certificate_warnings(path, name, pattern, certificate))
    warnings.extend(_origin_tls_warnings(path, name, reader, domain))
    return domain, factory, websocket or serve_http


def _parse_health(reader, base):
    """The health keys of one section, defaulting to `base` (the [relay] values)."""
    health = HealthConfig(**reader.values(_group(reader.scope, "health"), base))
    if health.interval and health.timeout > health.interval:
        named = reader.raw("health_timeout") or not reader.raw("health_interval")
        key = "health_timeout" if named else "health_interval"
        reader.fail(key, f"health_timeout ({health.timeout:g}) is longer than health_interval ({health.interval:g})")
    return health


def _installed_selectors(path):
    from wsrelay.selectors import installed

    factories = installed()
    if not factories:
        raise ConfigError(path, None, None,
                          "no origin selector is installed (twisted/plugins/wsrelay_selectors.py missing?)")
    return factories


def _selector_factory(reader, key, factories, name=None):
    name = (name if name is not None else reader.raw(key) or "").strip().lower()
    factory = factories.get(name)
    if factory is None:
        reader.fail(key, f"{name!r} is not an installed selector (installed: {', '.join(sorted(factories))})")
    return factory


def _selector_sections(path, parser, factories):
    """The [selector:NAME] sections, checked: each NAME installed, each key one of its options."""
    sections = {}
    for name in parser.sections():
        if not name.startswith("selector:"):
            continue
        reader = Section(path, name, parser[name], "selector")
        selector = name[len("selector:"):].strip().lower()
        factory = factories.get(selector)
        if factory is None:
            raise ConfigError(path, name, None, f"{selector!r} is not an installed selector "
                                                f"(installed: {', '.join(sorted(factories))})")
        for key in reader.section:
            if key not in factory.options:
                known = ", ".join(sorted(factory.options)) or "none"
                reader.fail(key, f"unknown key (the options of {selector} are: {known})"
                                 + _did_you_mean(key, factory.options))
        sections[selector] = reader
    return sections


def _selector_options(reader, factory, defaults):
    """The domain's options for its selector: [selector:NAME] values (`defaults`), then the domain's own."""
    raw, source = {}, {}
    for section in (defaults, reader) if defaults is not None else (reader,):
        for key in section.section:
            if key in factory.options:
                raw[key], source[key] = section.raw(key), section.name
    from wsrelay.selectors import OptionError

    try:
        return factory.parse_options(raw)
    except OptionError as e:
        raise ConfigError(reader.path, source.get(e.key, reader.name), e.key or "selector", str(e))


def _server_certificate(reader, now, loaded):
    """The section's certificate and private_key, loaded and checked once per pair of files."""
    certificate_path = reader.get("certificate")
    key_path = reader.get("private_key")
    if certificate_path is None:
        if key_path is not None:
            reader.fail("private_key", "is set without certificate")
        return None
    key_path = key_path or certificate_path
    pair = (certificate_path, key_path)
    if pair not in loaded:
        try:
            loaded[pair] = tls.load_server_certificate(certificate_path, key_path, now)
        except tls.CertificateError as e:
            reader.fail(e.key, str(e))
    return loaded[pair]


def _origin_ca(reader, loaded):
    path = reader.get("origin_ca")
    if path is None:
        return None
    if path not in loaded:
        try:
            loaded[path] = tls.load_ca_bundle(path)
        except tls.CertificateError as e:
            reader.fail(e.key, str(e))
    return loaded[path]


def _parse_accounting(path, parser, relay):
    """[relay] accounting (a store name or off), geoip_*_db, and the [accounting] section."""
    from wsrelay.accounting import OptionError, installed

    section = Section(path, "accounting", parser["accounting"] if parser.has_section("accounting") else {},
                      "accounting")
    name = relay.get("accounting").lower()
    if name == "off":
        return None
    factories = installed()
    factory = factories.get(name)
    if factory is None:
        relay.fail("accounting", f"{name!r} is not an installed statistics store "
                                 f"(installed: {', '.join(sorted(factories)) or 'none'}; or off)")
    for key in section.section:
        if key not in ACCOUNTING_KEYS and key not in factory.options:
            known = ", ".join(sorted(ACCOUNTING_KEYS | set(factory.options)))
            section.fail(key, f"unknown key (with accounting = {name}: {known})"
                              + _did_you_mean(key, ACCOUNTING_KEYS | set(factory.options)))
    try:
        options = factory.parse_options({k: section.raw(k) for k in section.section if k in factory.options},
                                        os.path.dirname(path))
    except OptionError as e:
        section.fail(e.key, str(e))
    flush_interval = section.get("flush_interval")
    if not 0 < flush_interval <= 300:
        section.fail("flush_interval", f"{section.raw('flush_interval')!r} must be more than 0 and at most 300")
    node_id = section.get("node_id") or os.uname().nodename
    if not node_id.isprintable() or len(node_id) > 100:
        section.fail("node_id", f"{node_id!r} is not a printable name of at most 100 characters")
    geo = {}
    for key in ("geoip_city_db", "geoip_asn_db"):
        geo[key] = relay.get(key)
        if geo[key] is not None:
            from wsrelay.accounting.geo import check_database

            problem = check_database(geo[key])
            if problem:
                relay.fail(key, f"{geo[key]} is not a readable MaxMind database ({problem})")
    admin, token = _parse_admin(section)
    return AccountingSettings(
        store=name, factory=factory, options=options, flush_interval=flush_interval, node_id=node_id,
        admin=admin, admin_token=token, metrics_public=section.get("metrics_public"),
        retention_5m=section.get("retention_5m"),
        retention_1h=section.get("retention_1h"),
        retention_1d=section.get("retention_1d"),
        **geo)


def _parse_admin(section):
    """[accounting] admin (one server endpoint string) and admin_token_file (required with it)."""
    token_file = section.get("admin_token_file")
    if not section.raw("admin"):
        if token_file is not None:
            section.fail("admin_token_file", "set, but admin is not (no admin API listens)")
        return None, None
    admin = section.get("admin")
    if token_file is None:
        section.fail("admin_token_file", "required with admin: a file holding the API's bearer token")
    try:
        with open(token_file, "rb") as f:
            token = f.read().strip()
    except OSError as e:
        section.fail("admin_token_file", f"cannot read {token_file} ({e.strerror})")
    if len(token) < MIN_TOKEN or any(b < 0x21 or b > 0x7E for b in token):
        section.fail("admin_token_file", f"{token_file} must hold one token of at least {MIN_TOKEN} "
                                         f"printable ASCII characters, no spaces")
    return admin, token


def _is_address(name):
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _check_domain_name(path, name):
    pattern = name[len("domain:"):].strip().lower().rstrip(".")
    if pattern == "*":
        return pattern
    bare = pattern[2:] if pattern.startswith("*.") else pattern
    labels = bare.split(".")
    ok = bare and all(
        label and len(label) <= 63 and all(c.isalnum() or c in "-_" for c in label)
        for label in labels
    )
    if not ok:
        try:
            ipaddress.ip_address(bare.strip("[]"))
            return bare.strip("[]")
        except ValueError:
            raise ConfigError(
                path, name, None,
                "the domain must be a host name, *.parent.name, an IP address or *",
            )
    return pattern


def _certificate_warnings(path, name, pattern, certificate):
    if certificate is None or certificate.covers(pattern):
        return []
    names = ", ".join(certificate.names) or "no subjectAltName"
    return [f"{path}: [{name}] certificate: {certificate.certificate_path} is not for {pattern} "
            f"(it names {names}): clients will refuse it"]


def _origin_tls_warnings(path, name, reader, domain):
    where = f"{path}: [{name}]"
    if domain.origin_protocol == "http":
        named = [key for key in ORIGIN_TLS_KEYS if reader.raw(key)]
        if named:
            return [f"{where}: {', '.join(named)} has no effect with origin_protocol = http"]
        return []
    if not domain.origin_verify:
        return [f"{where}: origin_verify = off: origin certificates are not checked, "
                "anyone on the path to the origin can pose as it"]
    return []


def _timeout_warnings(where, d):
    warnings = []
    if d.heartbeat_interval and d.connection_timeout and d.heartbeat_interval > d.connection_timeout:
        warnings.append(
            f"{where}: heartbeat_interval ({d.heartbeat_interval:g}) > connection_timeout "
            f"({d.connection_timeout:g}): idle sessions are closed before a ping is ever sent"
        )
    if not d.heartbeat_interval and not d.connection_timeout:
        warnings.append(
            f"{where}: heartbeat_interval and connection_timeout are both 0: "
            "a dead peer is never noticed and its session is kept forever"
        )
    return warnings


def load_config(path, now=None):
    """Read and parse a config file; a missing or unreadable file is a ConfigError."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(path, None, None, f"cannot read the file ({e.strerror})")
    except UnicodeDecodeError:
        raise ConfigError(path, None, None, "the file is not UTF-8 text")
    return parse_config(text, path, now)
