"""Planning: capacity."""
