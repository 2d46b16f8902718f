"""Code-side facts the registry checks bundles against: hashing, labels, feature schemas."""
