"""wan-record: capture Wan cross-attention into a store."""
