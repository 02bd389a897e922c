"""The perfmodel command line (typer), thin over the library: one module per command group."""
