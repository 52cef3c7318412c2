"""The rule language: grammar, parser, AST, loader, checker, formatter, units. Imports nothing of almarules outside dsl."""
