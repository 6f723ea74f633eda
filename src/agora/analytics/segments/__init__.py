"""User segments: clustering users into described segments stored as groups."""
