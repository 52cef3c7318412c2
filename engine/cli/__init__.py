"""The `almarules` command: main plus one module per command group, sharing engine.cli.common. Imports: everything."""

from almarules.engine.cli.app import main

__all__ = ["main"]
