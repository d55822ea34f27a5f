"""JSONB values decode to what the json module would make of them, only faster."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from panels.platform.db import decode_jsonb

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values)
def test_decodes_as_the_json_module_does(value: object) -> None:
    text = json.dumps(value)
    assert decode_jsonb(text) == json.loads(text)


def test_a_number_beyond_a_float_is_infinity_as_with_the_json_module() -> None:
    assert decode_jsonb('{"x": 1e400}') == {"x": float("inf")}
