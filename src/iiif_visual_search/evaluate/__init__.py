"""Evaluations by command: the paper's exact-retrieval experiment and the cross-validated classification report."""
