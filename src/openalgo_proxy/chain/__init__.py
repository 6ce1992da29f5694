"""Live option chains: pricing, implied volatility, Greeks and the chain service on the bus."""
