"""One module per ``convdot`` subcommand, each with ``add_parser(subparsers)`` and ``run(args)``."""
