"""Tests of the command line through typer's CliRunner."""
