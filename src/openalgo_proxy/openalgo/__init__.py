"""Drop-in mode: run as the streaming layer of an existing OpenAlgo installation.

Reads OpenAlgo's `.env` and database (read-only), derives its Fernet key, indexes its API keys,
follows its broker session and its ZeroMQ rendezvous port, and writes its stats file. Nothing here
imports OpenAlgo; the schemes are implemented from their public algorithms.
"""
