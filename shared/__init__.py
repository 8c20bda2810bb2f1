"""The contract between recorder and analyzer: the store schema. Never imports torch."""
