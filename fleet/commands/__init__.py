"""One module per CLI area. Each exposes ``register(subparsers)`` which adds its parsers
and sets ``func=cmd_x`` where ``cmd_x(args, cfg) -> int``. Modules import heavy things
(database drivers, paho, zeroconf) inside the command functions, so ``fleet --help`` stays
fast. See fleet/README.md."""
