"""One module per paper; importing this package registers every scenario."""
from jaxsg.scenarios import sgin  # noqa: F401

# Scenario modules added by later issues register themselves with one import line each.
