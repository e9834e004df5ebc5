"""
The relay's extension points as zope interfaces.

An origin selection strategy is a plugin: an ISelectorFactory instance in a
module of any `twisted/plugins/` package on the path (see
twisted/plugins/wsrelay_selectors.py for the built-in ones), found by
`twisted.plugin.getPlugins` and named in the config with `selector = NAME`.
The relay builds one ISelector per domain from it and talks to that object
only through the methods below.
"""

from zope.interface import Attribute, Interface


class IHandshake(Interface):
    """What a selector may know about the opening handshake it chooses an origin for."""

    domain = Attribute(
        "The name of the [domain:...] section serving it: 'chat.example.com', '*.example.com' or '*'.")
    path = Attribute("The request path without the query, as the client sent it (str).")
    query = Attribute("The query parameters: a mapping of name to a list of str values; empty when there is no query.")
    headers = Attribute(
        "The request headers: a mapping of lower-case name to str value; repeated headers are joined with ', '.")
    client_address = Attribute(
        "The client's IP address (str): the TCP peer, or from X-Forwarded-For when the peer is a trusted proxy.")


class ISelectorFactory(Interface):
    """
    A named origin selection strategy (a plugin). Instances are module-level
    objects in a dropin, so importing the dropin must stay cheap: heavy imports
    belong in `build`.
    """

    name = Attribute("The name the config uses, `selector = NAME` (str, lower case, no white space).")
    help = Attribute("One line describing the strategy, for `twistd wsrelay --help-selectors` (str).")
    options = Attribute(
        "A mapping of each option key the strategy accepts to a (default, one-line help) pair of str. "
        "The keys may be set in a [selector:NAME] section (for every domain using NAME) and in a "
        "domain's own section (for that domain). Empty when the strategy has no options.")

    def parse_options(raw):
        """
        Turn the strategy's options for one domain into an immutable value,
        once, at config load.

        @param raw: a mapping of option key to str value, holding only keys of
            `options` that the config sets (absent keys take their defaults).
        @return: any immutable value; the relay keeps it as the domain's
            `selector_options` and never looks inside.
        @raise wsrelay.selectors.OptionError: naming the key and what is wrong
            with its value; the relay turns it into a config error naming
            the file and the section.
        """

    def build(domain, reactor):
        """
        Build the runtime selector for one domain.

        @param domain: the domain's immutable config (wsrelay.config.DomainConfig):
            `name`, `origins` (each with `host`, `port` and `weight`, in listed
            order) and `selector_options` (what `parse_options` returned).
        @param reactor: the relay's reactor (IReactorTime and friends); a
            selector must not use the global one.
        @return: an ISelector provider.
        """


class ISelector(Interface):
    """
    One domain's runtime origin choice. The relay owns one per domain, calls
    `choose` once per handshake and reports what became of each dial. Health
    (passive ejection, active checks) is the relay's business: a selector is
    only ever offered the origins that are in rotation.
    """

    def choose(handshake, available):
        """
        Choose the origins for one handshake, best first.

        Keep it cheap: it runs once per handshake. The relay dials the first
        origin and, when the TCP connect to it fails, retries once on the second.

        @param handshake: an IHandshake provider.
        @param available: a non-empty tuple of the domain's origins that are in
            rotation now, in the order the config lists them.
        @return: a Deferred firing with a non-empty sequence of distinct
            origins taken from `available`. A Deferred that fires with an empty
            sequence, or fails, gives the client 503.
        """

    def connection_opened(origin):
        """The origin answered 101: a relayed session to it is live."""

    def connection_closed(origin):
        """A session reported by connection_opened(origin) has ended (exactly once per opened)."""

    def connection_failed(origin, reason):
        """
        A dial to the origin failed before any session: TCP connect refused or
        timed out, or the WebSocket handshake broke (connection closed, invalid
        answer, no answer in time). `reason` is a short str. An origin that
        answers with its own HTTP status (403, 500, ...) is not failing, and a
        dial abandoned because the client left is not reported at all.
        """


class IAccountingFactory(Interface):
    """
    A named statistics store (a plugin): `accounting = NAME` in [relay].
    Instances are module-level objects in a dropin
    (twisted/plugins/wsrelay_accounting.py for the built-in ones); a database
    driver is imported in `build`, never at import.
    """

    name = Attribute("The name the config uses, `accounting = NAME` (str).")
    help = Attribute("One line describing the store (str).")
    options = Attribute(
        "A mapping of each key the store accepts in [accounting] to a (default, one-line help) pair of str.")

    def parse_options(raw, base):
        """
        Turn the store's keys into an immutable value, once, at config load.

        @param raw: a mapping of key to str value (only keys of `options` the config sets).
        @param base: the directory relative file names are taken from (the config file's).
        @raise wsrelay.accounting.OptionError: naming the key and what is wrong.
        """

    def build(options, reactor):
        """
        @param options: what `parse_options` returned.
        @param reactor: the relay's reactor: results are delivered on it.
        @return: an IAccounting provider, not yet connected to its database.
        """


class IAccounting(Interface):
    """
    A statistics store. Every method returns a Deferred fired on the reactor
    thread; the database work itself happens elsewhere (a thread, a network
    round trip) and never blocks the reactor.
    """

    def write(batch):
        """
        Add one wsrelay.accounting.meter.Batch in one transaction, with its
        batch id (node, run, seq) recorded in that same transaction: a batch
        whose id is already recorded adds nothing. Coarser points (1 hour,
        1 day) covering the batch are recomputed from the finer ones in the
        same transaction. Fires with True (written) or False (already there);
        fails when nothing was written.
        """

    def expire(now, retention):
        """
        Delete the points older than their retention: `retention` maps the
        point width in seconds (300, 3600, 86400) to seconds kept.
        """

    def points(table, start, end, domains=None, regions=None, isps=None):
        """
        Rows of `table` (traffic, peaks, statuses, closes) at one width
        (`table` is e.g. "traffic_5m"), bucket in [start, end), filtered by
        the given domains, regions and ISPs (None: all): a list of dicts.
        """

    def record_billing(node, changes):
        """
        Record, in one transaction, the billing settings relay `node` (str)
        found in its config: `changes` is [(domain, method, cycle, at)], `at`
        epoch seconds. A domain's setting is added only when it differs from
        the last one recorded for that domain (by any node).
        """

    def billing_history(domains=None):
        """
        The recorded billing settings of `domains` (None: all), oldest first:
        a list of dicts with domain, changed_at (epoch seconds), method, cycle.
        """

    def close():
        """Release the database; a Deferred fired once it is released."""
