"""`fleet serve`: run the fleet service (the REST API) with uvicorn; it alone holds the database URL."""
from __future__ import annotations

import argparse
import os
import sys


def register(sub) -> None:
    p = sub.add_parser("serve", help="run the fleet service (REST API under /api/v1, see docs/fleet-service.md)",
                       description="The service is stateless: N workers (or N machines behind a load balancer) "
                                   "share one database. Environment: FLEET_DB, FLEET_KEK_FILE, FLEET_MQTT, "
                                   "FLEET_METRICS_TOKEN, FLEET_TRUSTED_PROXIES.")
    p.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT", help="default 127.0.0.1:8080")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--db-threads", type=int, default=None, help="database connections per worker (default 8)")
    p.add_argument("--kek-file", default=None, help="key-encryption keys for config secrets ($FLEET_KEK_FILE)")
    p.add_argument("--mqtt", default=None, metavar="HOST:PORT", help="broker for config pushes ($FLEET_MQTT)")
    p.add_argument("--new-kek", metavar="KEY_ID", help="print a new key line for the KEK file and exit")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_serve)


def parse_listen(text: str) -> tuple[str, int]:
    from ..errors import ValidationError

    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValidationError(f"--listen {text!r} is not HOST:PORT; write e.g. 127.0.0.1:8080 or 0.0.0.0:8080")
    return host.strip("[]") or "127.0.0.1", int(port)


def app_factory():  # noqa: ANN201 - called by uvicorn in each worker (factory=True)
    from ..api import create_app, settings_from_env

    return create_app(settings_from_env())


def cmd_serve(args: argparse.Namespace, cfg) -> int:
    from ..errors import ValidationError

    if args.new_kek:
        from ..config import Keyring

        print(Keyring.new_line(args.new_kek))
        return 0
    host, port = parse_listen(args.listen)
    if args.workers < 1:
        raise ValidationError(f"--workers {args.workers} must be 1 or more")
    # The settings travel to the workers through the environment (each worker builds its app).
    os.environ["FLEET_DB"] = cfg.db_url
    for name, value in (("FLEET_KEK_FILE", args.kek_file), ("FLEET_MQTT", args.mqtt)):
        if value:
            os.environ[name] = value
    if args.db_threads:
        os.environ["FLEET_DB_THREADS"] = str(args.db_threads)
    from ..api import settings_from_env
    from ..store import open_store, pending

    settings = settings_from_env()          # fail here, not in every worker, on a bad key file or URL
    if settings.kek_file:
        from ..config import Keyring

        Keyring.load(settings.kek_file)
    store = open_store(settings.db_url, migrate=False)
    try:
        todo = pending(store)
    finally:
        store.close()
    if todo:
        print(f"fleet serve: {len(todo)} migration(s) pending ({', '.join(todo)}); run `fleet db migrate` as the "
              "database owner; /readyz answers 503 until then", file=sys.stderr)
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        import tempfile

        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="fleet-metrics-")
    import uvicorn

    print(f"fleet service on http://{host}:{port} ({args.workers} worker(s)); API under /api/v1, "
          f"contract /openapi.json", file=sys.stderr, flush=True)
    uvicorn.run("fleet.commands.serve:app_factory", factory=True, host=host, port=port, workers=args.workers,
                log_level=args.log_level, access_log=False, proxy_headers=False, server_header=False)
    return 0
