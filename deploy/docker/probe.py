"""Container health probe: GET a flockwatch endpoint (default /healthz) and exit 0 on 200, 1 otherwise.

With a web configuration file the endpoints need TLS and basic auth too (as in the exporter-toolkit, every path is
authenticated). Set FLOCKWATCH_PROBE_URL (default http://127.0.0.1:9808), FLOCKWATCH_PROBE_CA_FILE (the CA of the
server certificate), FLOCKWATCH_PROBE_PASSWORD_FILE and FLOCKWATCH_PROBE_USER (default probe).
Usage: python /usr/local/bin/flockwatch-probe [/healthz|/readyz]
"""

import base64
import os
import ssl
import sys
import urllib.request


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else "/healthz"
    request = urllib.request.Request(os.environ.get("FLOCKWATCH_PROBE_URL", "http://127.0.0.1:9808") + path)
    password_file = os.environ.get("FLOCKWATCH_PROBE_PASSWORD_FILE")
    if password_file:
        with open(password_file, encoding="utf-8") as handle:
            secret = handle.read().strip()
        user = os.environ.get("FLOCKWATCH_PROBE_USER", "probe")
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode())
    ca_file = os.environ.get("FLOCKWATCH_PROBE_CA_FILE")
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    try:
        with urllib.request.urlopen(request, timeout=4, context=context) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:  # refused, TLS failure, timeout, or an HTTP error status
        print(f"flockwatch probe {path}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
