"""Nearest-neighbour indexes: one FAISS index per embedding model (``vectors``)."""

from .vectors import (HNSW_THRESHOLD, IndexMismatch, SearchHit, VectorFile, VectorIndex, VectorStore, list_models,
                      vectors_dir)

__all__ = ["HNSW_THRESHOLD", "IndexMismatch", "SearchHit", "VectorFile", "VectorIndex", "VectorStore",
           "list_models", "vectors_dir"]
