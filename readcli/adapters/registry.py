"""The fine-tuning methods readcli knows: method name -> its module's `MethodSpec`, in listing order.

Adding a method is one module under readcli/adapters/methods/ plus its entry here
(docs/adapters.md, "Adding a method").
"""

from __future__ import annotations

from readcli.adapters.method import MethodSpec
from readcli.adapters.methods import adapter, bias, full, ia3, lora, partial, proj, prompt, read
from readcli.errors import InvalidValueError, choices_text

METHOD_SPECS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        full.SPEC,
        partial.SPEC,
        bias.SPEC,
        proj.SPEC,
        lora.SPEC,
        prompt.SPEC,
        adapter.SPEC,
        read.SPEC,
        ia3.SPEC,
    )
}
# method name -> what it trains (for listings and help)
METHODS: dict[str, str] = {name: spec.summary for name, spec in METHOD_SPECS.items()}


def spec_of(method: object) -> MethodSpec:
    """The spec of `method`; one line listing the methods when it is none of them."""
    if not isinstance(method, str) or method not in METHOD_SPECS:
        raise InvalidValueError(f"unknown method {method!r}: choose one of {choices_text(METHOD_SPECS)}")
    return METHOD_SPECS[method]
