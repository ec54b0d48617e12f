"""Federation: several stores (or catalogs, local or remote) searched and read as one.

:class:`FederatedStore` merges its members' answers (each member in its own thread, with a
timeout; a member that fails is reported, not fatal); :class:`FederatedCatalog` is the intake
driver (``bluesky-federation-catalog``) whose ``members`` come from YAML (see
:mod:`intake_broker.federation.members`).
"""

from intake_broker.federation.federated import (
    FederatedCatalog,
    FederatedStore,
    MembersUnavailable,
    MemberUnavailableWarning,
)

__all__ = ["FederatedCatalog", "FederatedStore", "MemberUnavailableWarning", "MembersUnavailable"]
