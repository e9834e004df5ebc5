# The built-in statistics stores as Twisted plugins (IAccountingFactory), found
# by name with twisted.plugin.getPlugins (`accounting = NAME` in [relay]).
from wsrelay.accounting.builtin import PostgreSQLFactory, SQLiteFactory

sqlite = SQLiteFactory()
postgresql = PostgreSQLFactory()
