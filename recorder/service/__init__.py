"""`callvault serve`: the long-running recorder service next to an SFU."""
