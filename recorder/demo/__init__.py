"""`callvault demo`'s parts: a private network namespace with Janus in it (`lab`), and an aiortc
publisher (`publisher`, needs the `demo` extra: `pip install 'callvault[demo]'`)."""
