"""Command-line entry points (`xlda-preprocess`, ...); each module has `main(argv=None)`."""
