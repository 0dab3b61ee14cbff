"""Models: pure flax.linen modules that speak logical axis names only (docs/DESIGN.md §1, §3)."""
