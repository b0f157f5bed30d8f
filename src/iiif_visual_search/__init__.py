"""iiif-visual-search: find the pictures inside digitised books and newspapers, and answer as IIIF."""

__version__ = "0.1.0"
