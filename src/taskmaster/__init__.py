"""taskmaster: Task Master MCP tools on a gossip-clustered CRDT store."""
__version__ = "0.1.0"
