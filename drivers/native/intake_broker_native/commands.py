"""``intake-broker reindex``, registered through the ``intake_broker.commands`` entry points (this
module stays light: the recovery code is imported when the command runs)."""

from __future__ import annotations

from typing import Any


class Reindex:
    """``intake-broker reindex [--data DIR] [--index URL]``: rebuild a native store's run index
    from its data folder (see :func:`intake_broker_native.reindex`)."""

    name = "reindex"
    help = "rebuild a native store's run index from its data folder (after it was lost or damaged)"
    raw = True  # its own --data: the store folder, as the errors that suggest it say
    needs_catalog = False

    def configure(self, parser: Any) -> None:
        """Parses its own arguments (``intake-broker reindex --help``)."""

    def run(self, args: Any, catalog: Any) -> int:
        from .recovery import main

        return main(args)


REINDEX = Reindex()
