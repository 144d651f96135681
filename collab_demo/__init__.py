"""Synthetic extracts from fictional charities, for the demo, the benchmarks and the tests."""
