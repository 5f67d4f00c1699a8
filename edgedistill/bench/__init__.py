"""The benchmark harness: every model measured in its own process, one report for all of them."""
