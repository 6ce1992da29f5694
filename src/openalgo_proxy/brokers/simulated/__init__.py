"""The in-process simulated market as a broker adapter (no wire protocol in between)."""
