"""Mixtures of clean machine clips and noise (methods.md section 3): noise library, plans, rendering."""
