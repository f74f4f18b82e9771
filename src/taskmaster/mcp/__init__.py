"""The MCP protocol layer: JSON-RPC framing, Streamable HTTP at /mcp, and the stdio bridge."""
