"""
The declared keys, by concern; wsrelay/config/schema.py puts them together
(KEYS, in the order etc/relay.ini lists them) and says what a Key is.
"""
