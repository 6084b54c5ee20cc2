"""scanner/posture/solution.py: an environment variable definition never shows its value."""
from scanner.posture.solution import EnvVarDef


def test_an_env_var_definition_keeps_its_default_value_out_of_its_repr():
    value = "Zq8vN2pL5xW9rT3k"  # a made-up value, as a String definition's default could hold
    d = EnvVarDef(schemaname="cr_ApiKey", type="100000000", defaultvalue=value)
    assert d.defaultvalue == value
    assert value not in repr(d) and value not in str(d)
