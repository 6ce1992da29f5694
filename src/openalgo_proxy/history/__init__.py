"""Recorded history: the tick store (Parquet), the pure candle builder, the recorder and readers."""
