"""Custom semantic classifiers over a map's vectors: a few labelled records, class descriptions in
words (zero-shot), or both; cross-validated scores; the records worth labelling next.

- :mod:`.classifier`  :class:`SemanticClassifier` (fit / predict_proba / predict / cross_validate)
- :mod:`.uncertain`   :func:`least_certain`: the least sure records, spread over the map

scikit-learn is imported inside the functions that train, so importing this package stays cheap.
"""

from .classifier import ClassifierSettings, ClassifierSpec, CrossValidation, SemanticClassifier, check_classifier_name
from .uncertain import least_certain, margins

__all__ = ["ClassifierSettings", "ClassifierSpec", "CrossValidation", "SemanticClassifier", "check_classifier_name", "least_certain",
           "margins"]
