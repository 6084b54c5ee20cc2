"""Credentials that providers print in their own documentation: public, never valid, everywhere.

People paste README snippets, `aws configure` transcripts and emulator connection strings into flows;
a scanner that reports them sends responders after keys that open nothing. Every rule (flowleaks'
pattern rules, detect-secrets plugins, the entropy stage) gives its candidate to
`is_documentation_example`; a match becomes `Drop(rule_id, filter='documentation example')`, so the
silence stays countable in the `filtered` table. Known values are not checked: a value the user
handed us is theirs, whatever it looks like.

Every entry is quoted from the provider's documentation, named beside it. Nothing here is copied from
another scanner's rules or tests.
"""
from __future__ import annotations

import re

FILTER = "documentation example"

DOC_EXAMPLES: dict[str, str] = {
    # AWS CLI user guide, "Configuration and credential file settings" (~/.aws/credentials):
    # https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-files.html
    "AKIAIOSFODNN7EXAMPLE": "AWS docs example access key id",
    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY": "AWS docs example secret access key",
    # same page, the second named profile of its examples
    "AKIAI44QH8DHBEXAMPLE": "AWS docs example access key id (second profile)",
    "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY": "AWS docs example secret access key (second profile)",
    # AWS General Reference, "Calculate the signature for AWS Signature Version 4" (kSecret):
    # https://docs.aws.amazon.com/general/latest/gr/sigv4-calculate-signature.html
    "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY": "AWS SigV4 docs example secret access key",
    # Azure Storage, "Connect to Azurite with SDKs and tools": the well-known emulator account key
    # (account devstoreaccount1), accepted only by local Azurite / Storage Emulator instances:
    # https://learn.microsoft.com/azure/storage/common/storage-connect-azurite
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==":
        "Azurite / Storage Emulator well-known account key",
    # Azure Storage REST API, "Service SAS examples" (a container SAS `sig`):
    # https://learn.microsoft.com/rest/api/storageservices/service-sas-examples
    "dD80ihBh5jfNpymO5Hg1IdiJIEvHcJpCMiCMnN/RnbI=": "Azure Storage docs example SAS signature",
    # Stripe API reference, "Authentication" (the sample test-mode key of its curl examples):
    # https://docs.stripe.com/api/authentication
    "sk_test_4eC39HqLyjWDarjtT1zdp7dc": "Stripe docs example test secret key",
}

# AWS writes every example credential of its docs the same way: an access key id ending in `EXAMPLE`
# and a secret access key ending in `EXAMPLEKEY` (the keys above, and their variants on other pages:
# `ASIA…EXAMPLE` for STS session credentials). Real keys are random base32 / base64 and never spell it.
_AWS_EXAMPLE_SHAPE = re.compile(r"(?:AKIA|ASIA|ABIA|ACCA|AIDA|AROA)[A-Z0-9]{9}EXAMPLE|[A-Za-z0-9/+]{30}EXAMPLEKEY")

_MIN_PART = 16  # a candidate this long that is a piece of an example is that example, cut
_LEFTOVER = re.compile(r"[A-Za-z0-9+/_-]{8}")


def is_documentation_example(secret: str) -> bool:
    """True when `secret` is a provider's documentation example, a long piece of one, or holds
    nothing but examples (`AKIA…EXAMPLE:wJalr…EXAMPLEKEY`): a real key beside an example is kept."""
    s = secret.strip().strip("'\"")
    if s in DOC_EXAMPLES or _AWS_EXAMPLE_SHAPE.fullmatch(s):
        return True
    if len(s) >= _MIN_PART and any(s in ex for ex in DOC_EXAMPLES):
        return True
    rest, found = s, False
    if "EXAMPLE" in rest:
        rest, n = _AWS_EXAMPLE_SHAPE.subn(" ", rest)
        found = n > 0
    for ex in DOC_EXAMPLES:
        if ex in rest:
            rest, found = rest.replace(ex, " "), True
    return found and not _LEFTOVER.search(rest)

