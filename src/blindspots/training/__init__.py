"""Input pipeline and training loop."""
