"""Region classification: label import, nested cross-validated logistic regression, apply, zero-shot.

Heavy imports (scikit-learn, matplotlib, torch) live in the submodules so that importing this
package stays cheap.
"""

from .classes import PAPER_CLASSES, canonical_class

__all__ = ["PAPER_CLASSES", "canonical_class"]
