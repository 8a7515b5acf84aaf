"""Cluster-wide settings: one versioned registry replicated to every member (see ``registry``)."""
