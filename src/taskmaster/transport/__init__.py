"""How gossip moves: UDP packets and TCP frames (net.py), or a simulated network (memory.py)."""

from taskmaster.transport.base import Address, Clock, Transport, TransportError
from taskmaster.transport.net import NetTransport

__all__ = ["Address", "Clock", "NetTransport", "Transport", "TransportError"]
