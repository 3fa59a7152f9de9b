"""One module per paper; importing this package registers every scenario."""
from jaxsg.scenarios import sgin  # noqa: F401
