"""Bundled sample data (a fictional persona) and the code that builds it."""
