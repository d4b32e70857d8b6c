"""Dataset download, ingestion, synthetic scenes and prepared records."""
