"""Planning: routes."""
