"""Search indexes built from the catalogue: vectors (FAISS) and full text."""
