"""Custom gitleaks-format packs (detectors/custom.py) as the engine runs them. Tokens are fake."""
import pickle

import pytest

from detectors.custom import CustomRules, CustomRulesError, _translate
from detectors.engine import Engine

TOKEN = "acme_q8w2e7r4t6y1u3i9o5p0a2s4d6f8g0h2"


def pack(body: str, rules_only: bool = False) -> CustomRules:
    import tomllib

    return CustomRules((("pack.toml", tomllib.loads(body)),), rules_only)


def secrets(engine: Engine, text: str, rule_id: str) -> list[str]:
    return [h.secret for h in engine.scan({"note": text}).hits if h.rule_id == rule_id]


def test_secret_group_defaults_to_the_first_group_else_the_match():
    c = pack('''
[[rules]]
id = "grouped"
regex = 'key=(acme_[a-z0-9]{32})'
[[rules]]
id = "whole"
regex = 'zz_[a-z0-9]{32}'
[[rules]]
id = "explicit"
regex = '(tok)=(yy_[a-z0-9]{8})'
secretGroup = 2
''')
    e = Engine(custom=c)
    assert secrets(e, f"key={TOKEN}", "grouped") == [TOKEN]
    assert secrets(e, "zz_" + TOKEN[5:], "whole") == ["zz_" + TOKEN[5:]]
    assert secrets(e, "tok=yy_a1b2c3d4", "explicit") == ["yy_a1b2c3d4"]


def test_allowlists_regex_target_and_stopwords():
    c = pack('''
[[rules]]
id = "acme"
regex = 'key=(acme_[a-z0-9]{32})'
keywords = ["ACME_"]
[[rules.allowlists]]
regexes = ['^key=acme_q8']
regexTarget = "match"
[[rules.allowlists]]
stopwords = ["DEADBEEF"]
''')
    e = Engine(custom=c)
    assert secrets(e, f"key={TOKEN}", "acme") == []                       # match-target regex
    other = "acme_z8w2e7r4t6y1u3i9o5p0a2s4d6f8g0h2"
    assert secrets(e, f"key={other}", "acme") == [other]                  # keywords are case-insensitive
    assert secrets(e, "key=acme_z8w2e7r4deadbeef9o5p0a2s4d6f8g0h", "acme") == []  # stopword


def test_entropy_threshold():
    c = pack('[[rules]]\nid = "e"\nregex = \'e_([a-z0-9]{16})\'\nentropy = 3.5\n')
    e = Engine(custom=c)
    assert secrets(e, "e_aaaaaaaabbbbbbbb", "e") == []
    assert secrets(e, "e_q8w2e7r4t6y1u3i9", "e") == ["q8w2e7r4t6y1u3i9"]


def test_go_mid_pattern_flags_are_scoped():
    assert _translate("key=(?i)acme_[a-z]+") == "key=(?i:acme_[a-z]+)"
    assert _translate("(x(?i)ab)c") == "(x(?i:ab))c"
    c = pack('[[rules]]\nid = "g"\nregex = \'\'\'token=(?i)(acme_[a-z0-9]{32})\'\'\'\n')
    assert secrets(Engine(custom=c), "token=" + TOKEN.upper(), "g") == [TOKEN.upper()]


def test_rules_only_keeps_custom_rules_and_known_values_only():
    from detectors.known_values import KnownValues

    c = pack('[[rules]]\nid = "acme"\nregex = \'(acme_[a-z0-9]{32})\'\n', rules_only=True)
    known = KnownValues(key=b"k" * 32)
    known.add_values_from_lines(["Kn0wnSecretValue-123"], source_prefix="stdin")
    e = Engine(known=known, custom=c)
    body = {"note": TOKEN, "gh": "ghp_R8s2Lm4Qw9Zx1Tk7Vb3Nc6Hj5Pf0Yd2Ga8Eu", "password": "Winter2026!",
            "blob": "Zr8Kx2Nm4Qe6Wt3Yb7Lp1Vd9Sx5Cg0Hj8Mk2Nq4R", "kv": "Kn0wnSecretValue-123"}
    assert sorted(h.rule_id for h in e.scan(body).hits) == ["acme", "known-value"]
    assert len(Engine(known=known).scan(body).hits) > 2  # the same body with the built-in rules


def test_custom_rules_pickle_as_parsed_toml():
    c = pack('[[rules]]\nid = "acme"\nregex = \'(acme_[a-z0-9]{32})\'\n', rules_only=True)
    copy = pickle.loads(pickle.dumps(c))
    assert copy.rules_only and [r.id for r in copy.rules] == ["acme"] and copy.digest == c.digest
    assert b"re\n_compile" not in pickle.dumps(c)  # no compiled pattern travels


@pytest.mark.parametrize("body,why", [
    ('[[rules]]\nid = "x"\nregex = \'(\'\n', "regex does not compile"),
    ('[[rules]]\nid = "x"\nregex = \'a(b)\'\nsecretGroup = 2\n', "secretGroup"),
    ('[[rules]]\nregex = \'a\'\n', "id is required"),
    ('[[rules]]\nid = "x"\nregex = \'a\'\n[[rules]]\nid = "x"\nregex = \'b\'\n', "already defined"),
    ('[[rules]]\nid = "x"\nregex = \'a\'\n[rules.allowlist]\nregexTarget = "line"\n', "regexTarget"),
])
def test_bad_packs_name_the_file_and_rule(body, why):
    with pytest.raises(CustomRulesError, match=why) as err:
        pack(body)
    assert str(err.value).startswith("pack.toml")


def test_a_custom_id_may_not_shadow_a_builtin_rule():
    with pytest.raises(CustomRulesError, match="built-in"):
        Engine(custom=pack('[[rules]]\nid = "github-token"\nregex = \'a{9}\'\n'))
    Engine(custom=pack('[[rules]]\nid = "github-token"\nregex = \'a{9}\'\n', rules_only=True))
