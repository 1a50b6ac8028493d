"""Container health check: GET /healthz of the local `callvault serve`; exit 0 when it answers 200.

Port from CALLVAULT_HEALTHCHECK_PORT, else CALLVAULT_HTTP_PORT, else 8080. Standard library only, so the
image needs no curl.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("CALLVAULT_HEALTHCHECK_PORT") or os.environ.get("CALLVAULT_HTTP_PORT") or "8080"
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            ok = response.status == 200
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if not ok:
        print(f"unhealthy: {url}: HTTP {response.status}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
