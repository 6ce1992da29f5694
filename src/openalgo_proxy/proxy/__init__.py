"""The WebSocket proxy: client connections, the topic hub, admission, metrics."""
