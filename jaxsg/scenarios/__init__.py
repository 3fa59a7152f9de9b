"""One module per paper; importing this package registers every scenario."""

from jaxsg.scenarios import dt_deploy, edge_assoc, sgin, spectrum  # noqa: F401
