"""Network manager: the node-wide coordination layer of the management API."""
