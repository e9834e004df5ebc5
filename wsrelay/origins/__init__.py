"""
Origins: which one a handshake or request goes to (the domain's route: its selector and
the health of its origins), how it is reached (endpoint), and the dialling with its one retry.
"""
