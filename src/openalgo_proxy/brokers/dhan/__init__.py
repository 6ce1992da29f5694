"""Dhan: Live Market Feed v2, 20/200-level depth and order updates."""
