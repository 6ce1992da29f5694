"""Chain mode: a feed that is a client of an OpenAlgo-protocol WebSocket server (OpenAlgo's own proxy)."""
