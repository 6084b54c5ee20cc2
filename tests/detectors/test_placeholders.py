"""detectors/placeholders.py, the one answer to "is this a placeholder, not a secret": the whole-value
forms the pattern rules, the detect-secrets candidates and the posture checks share, and the
inside-a-token check of the entropy stage. (Its filter examples, through the engine, are in
detectors/filters.py and run by test_rules_examples.py.)"""
import pytest

from detectors.placeholders import contains_placeholder, is_placeholder

PLACEHOLDERS = [
    # empty, or at most two distinct characters
    "", "   ", "aaaaaaaa", "-_-_-_", "xx",
    # sample words (quotes and whitespace around them do not count)
    "changeme", " 'changeme' ", '"REPLACE_ME"', "your-api-key", "your_password_here", "todo", "TBD", "null",
    "undefined", "example-key", "dummy123", "placeholder value", "redacted", "[REDACTED]", "secret", "Password",
    # masks
    "********", "***hidden", "*sanitized*", "xxxxxxxx", "XXXX", ".....",
    # template and release-time variables
    "<your-key>", "${API_KEY}", "${a}-${b}", "{{apiKey}}", "{{a}}{{b}}", "%API_KEY%", "%a b%", "@@DbPassword@@",
    "#{DbPassword}#", "$(DbPassword)", "__DbPassword__",
    # workflow expressions
    "@{parameters('apiKey')}", "@parameters('apiKey')", "@body('Get_secret')?['value']",
]

SECRETS = [
    "Winter2026!", "Changeme2026!", "Tq7Vb3Mc6Hj9Pf4Yd0Sa2Lw5Xn1Zr8Kx2Nm4Qe6W", "Xk2#{q9Lm4Vt7", "p%ssw0rd",
    "abc", "ghp_R8s2Lm4Qw9Zx1Tk7Vb3Nc6Hj5Pf0Yd2Ga8Eu",
    # a template syntax is read on the value as written: quotes around it make a literal
    "'#{DbPassword}#'", '"%a b%"',
]


@pytest.mark.parametrize("value", PLACEHOLDERS)
def test_placeholders(value):
    assert is_placeholder(value)


@pytest.mark.parametrize("value", SECRETS)
def test_secrets_are_not_placeholders(value):
    assert not is_placeholder(value)


@pytest.mark.parametrize("token,inside", [
    ("xxxxxxxxxxxxxxxxxxxxabc123DEF456", True), ("REPLACE_ME_WITH_YOUR_KEY_abc123XYZ", True),
    ("Tq7Vb3Mc6Hj9Pf4Yd0SAMPLE2Lw5Xn1Zr8Kx2Nm4", True), ("ABCDEFGHIJKLMNOPQRSTUVWXYZ", True),
    ("Zk9xR2vT8mNw4pL7sYc1HbE5uJ3aGd6fAAAAAA", True), ("q8Zr2Lw5Xn1Tk7Vb3Mc6Hj9Pf4Yd0Sa2", False),
    ("Tq7Vb3Mc6Hj9Pf4Yd0Sa2Lw5Xn1Zr8Kx2Nm4Qe6W", False),
])
def test_placeholder_inside_a_token(token, inside):
    assert contains_placeholder(token) is inside
