"""Zerodha Kite Connect WebSocket feed: codec, connection shell, instruments, adapter, simulator."""
