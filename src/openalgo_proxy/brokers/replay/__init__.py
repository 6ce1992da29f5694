"""The replay "broker": recorded ticks from the tick store published as a feed."""
