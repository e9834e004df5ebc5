"""
Running the relay as a process: the twistd plugin, the service tree, signals, reload and
drain, workers sharing the ports, systemd notification and running out of descriptors.
"""
