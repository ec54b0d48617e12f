"""Access control: who may see and write which runs, applied in one place for every path
(:class:`GuardedStore`, in ``guard``)."""

from intake_broker.access.guard import AccessPolicy, GuardedStore, Principal, ProposalPolicy

__all__ = ["AccessPolicy", "GuardedStore", "Principal", "ProposalPolicy"]
