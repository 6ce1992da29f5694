"""Broker feeds: one package per broker, each a pure codec plus a thin connection shell."""
