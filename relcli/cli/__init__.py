"""The Typer command line: one module per subcommand; parse, load, call, write, report."""
