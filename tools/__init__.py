"""Development tooling of the project (not shipped): lint contracts."""
