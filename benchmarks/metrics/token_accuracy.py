"""Token accuracy as a local ``evaluate`` metric: the fraction of labelled tokens whose tag is right (POS tagging).

Unlike seqeval's entity F1 it treats every tag as a class of its own (no IOB2 chunks), which is what part-of-speech
tagging reports. Only the positions that carry a label are passed in (the first sub-token of each word).
"""

from __future__ import annotations

import datasets
import evaluate

_DESCRIPTION = "Token accuracy: correct tags over all labelled tokens, pooled over sentences (micro average)."
_CITATION = ""
_INPUTS = """
Args:
    predictions (`list` of `list` of `str`): predicted tags, one list per sentence.
    references (`list` of `list` of `str`): gold tags, one list per sentence (same lengths).
Returns:
    token_accuracy (`float`): in [0, 1]; 0 when there are no tokens.
"""


class TokenAccuracy(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        tags = datasets.List(datasets.Value("string"))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_INPUTS,
            features=datasets.Features({"predictions": tags, "references": tags}),
        )

    def _compute(self, predictions: list[list[str]], references: list[list[str]]) -> dict[str, float]:
        pairs = [(p, r) for pred, ref in zip(predictions, references, strict=True)
                 for p, r in zip(pred, ref, strict=True)]
        correct = sum(p == r for p, r in pairs)
        return {"token_accuracy": correct / len(pairs) if pairs else 0.0}
