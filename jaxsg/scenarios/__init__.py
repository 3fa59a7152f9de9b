"""One module per paper; importing this package registers every scenario."""
