"""Node-to-node calls (rpc), injected network faults (faults)."""
