"""The trained classifier on disk: a joblib file with the scikit-learn estimator and a JSON descriptor."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .nested_cv import candidate_from_name

MODEL_FILE = "model.joblib"
DESCRIPTOR_FILE = "model.json"


@dataclass
class TrainedClassifier:
    estimator: Any  # sklearn LogisticRegression
    classes: list[str]
    candidate: str  # embedding model name, or several joined with '+'
    C: float
    n: int
    embedding_descriptors: dict[str, Any] = field(default_factory=dict)
    trained_at: str = ""
    cv: dict[str, Any] = field(default_factory=dict)  # headline numbers of the CV that chose C

    @property
    def models(self) -> tuple[str, ...]:
        return candidate_from_name(self.candidate).models

    def descriptor(self) -> dict[str, Any]:
        return {
            "kind": "logistic-regression",
            "classes": self.classes,
            "embedding_model": self.candidate,
            "embedding_models": list(self.models),
            "embedding_descriptors": self.embedding_descriptors,
            "C": self.C,
            "n": self.n,
            "trained_at": self.trained_at,
            "cv": self.cv,
        }

    @property
    def version(self) -> str:
        """Stable for one trained model: the candidate plus a hash of the descriptor and the weights."""
        h = hashlib.sha256(json.dumps(self.descriptor(), sort_keys=True).encode())
        h.update(np.ascontiguousarray(self.estimator.coef_, dtype=np.float64).tobytes())
        return f"lr-{self.candidate}-{h.hexdigest()[:10]}"

    def predict(self, features: Mapping[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
        """(label per row, probability of that label) for vectors aligned across the needed models."""
        X = candidate_from_name(self.candidate).features(features)
        proba = self.estimator.predict_proba(X)
        idx = proba.argmax(axis=1)
        class_ids = self.estimator.classes_[idx]
        return [self.classes[int(c)] for c in class_ids], proba[np.arange(len(idx)), idx]

    def save(self, directory: Path) -> Path:
        import joblib

        directory.mkdir(parents=True, exist_ok=True)
        joblib.dump(self.estimator, directory / MODEL_FILE)
        desc = self.descriptor() | {"version": self.version}
        (directory / DESCRIPTOR_FILE).write_text(json.dumps(desc, indent=2), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: Path) -> TrainedClassifier:
        import joblib

        desc = json.loads((directory / DESCRIPTOR_FILE).read_text(encoding="utf-8"))
        estimator = joblib.load(directory / MODEL_FILE)
        return cls(estimator, desc["classes"], desc["embedding_model"], float(desc["C"]), int(desc["n"]),
                   desc.get("embedding_descriptors", {}), desc.get("trained_at", ""), desc.get("cv", {}))


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
