"""Angel One SmartAPI WebSocket 2.0: codec, instrument master, login, connection shell, adapter, simulator."""
