"""The definition-aware detector: a secret source's output field is a secret, whatever its shape."""
import pytest

from detectors.source_outputs import EXAMPLES, RULE_ID, source_output_hits


@pytest.mark.parametrize("kind,body", EXAMPLES["positive"])
def test_positive_examples(kind, body):
    hits = source_output_hits(kind, body)
    assert [h.rule_id for h in hits] == [RULE_ID]
    assert hits[0].json_path == "$.body.value"


@pytest.mark.parametrize("kind,body", EXAMPLES["negative"])
def test_negative_examples(kind, body):
    assert source_output_hits(kind, body) == []
