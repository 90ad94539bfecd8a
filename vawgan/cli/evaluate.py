"""`vawgan` verbs for this area (filled in as the area is built)."""


def register(subparsers) -> None:
    """Add this area's verbs to the `vawgan` command."""
