"""RustyRay."""
