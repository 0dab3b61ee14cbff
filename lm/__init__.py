"""Models: pure flax.linen modules that speak logical axis names only (DESIGN.md §1, §3)."""
