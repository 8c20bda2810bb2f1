"""wan-analyze: pictures and a report from a store, without torch."""
