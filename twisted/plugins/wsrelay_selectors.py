# The built-in origin selectors as Twisted plugins (ISelectorFactory), found by
# name with twisted.plugin.getPlugins. A third-party strategy is a module like
# this one in any twisted/plugins/ directory on the path.
from wsrelay.selectors.builtin import (
    HashFactory, LeastConnectionsFactory, PrimaryBackupFactory, RoundRobinFactory,
)

roundRobin = RoundRobinFactory()
leastConnections = LeastConnectionsFactory()
hashing = HashFactory()
primaryBackup = PrimaryBackupFactory()
