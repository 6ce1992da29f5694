"""openalgo-proxy: one broker login, any number of market-data consumers."""

__version__ = "0.1.0"
