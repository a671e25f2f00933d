"""Command line: a thin typer app, one module per noun."""
