"""The hardware layer: AT command channel, line drivers and audio ports.

Knows nothing of IVRs, queues or the journal; the engine in ``appliance`` drives it.
"""
