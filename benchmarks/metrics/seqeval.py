"""Entity-level precision, recall and F1 (seqeval) as a local ``evaluate`` metric, for IOB2 tag sequences.

Scores follow seqeval's default (conlleval-compatible, non-strict) matching. ``zero_division=0`` makes the
undefined cases (no predicted or no gold entities, e.g. the all-"O" majority baseline) score 0, as seqeval's default
does, without its warning at every evaluation.
"""

from __future__ import annotations

import datasets
import evaluate
from seqeval.metrics.sequence_labeling import accuracy_score, get_entities, precision_recall_fscore_support

_DESCRIPTION = "seqeval: entity-level precision, recall and F1 over IOB2 tag sequences, overall and per entity type."
_CITATION = """\
@misc{seqeval,
  title={{seqeval}: A Python framework for sequence labeling evaluation},
  url={https://github.com/chakki-works/seqeval},
  author={Hiroki Nakayama},
  year={2018}
}
"""
_INPUTS = """
Args:
    predictions (`list` of `list` of `str`): predicted IOB2 tags, one list per sentence.
    references (`list` of `list` of `str`): gold IOB2 tags, one list per sentence.
Returns:
    precision, recall, f1 (`float`): micro-averaged over entities; 0 when undefined.
    accuracy (`float`): token-level accuracy.
    f1_<TYPE> (`float`): F1 of each entity type found in the predictions or the references.
"""


class Seqeval(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        tags = datasets.List(datasets.Value("string"))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({"predictions": tags, "references": tags}),
        )

    def _compute(self, predictions: list[list[str]], references: list[list[str]]) -> dict[str, float]:
        precision, recall, f1, _ = precision_recall_fscore_support(
            references, predictions, average="micro", zero_division=0
        )
        scores = {"precision": float(precision), "recall": float(recall), "f1": float(f1),
                  "accuracy": float(accuracy_score(references, predictions))}
        # seqeval orders its per-type scores by sorted type name over both sides.
        types = sorted({entity[0] for tags in (references, predictions) for entity in get_entities(tags)})
        _, _, per_type_f1, _ = precision_recall_fscore_support(references, predictions, average=None, zero_division=0)
        scores.update({f"f1_{name}": float(value) for name, value in zip(types, per_type_f1, strict=True)})
        return scores
