"""Region classification: label import, nested cross-validated logistic regression, apply, zero-shot.

Heavy imports (scikit-learn, matplotlib, torch) live in the submodules so that importing this
package stays cheap.
"""

from .classes import HIDDEN_BY_DEFAULT, PAPER_CLASSES, canonical_class

__all__ = ["HIDDEN_BY_DEFAULT", "PAPER_CLASSES", "canonical_class"]
