"""Pages and form handlers, one module per area; each view is thin over queries and services."""
