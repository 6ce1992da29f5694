"""The Noren OMS family: Shoonya, Flattrade, Zebu, TradeSmart, Definedge and AliceBlue on one codec."""
