"""One module per fine-tuning method, each exposing `SPEC` (readcli.adapters.method.MethodSpec).

The registry (readcli/adapters/registry.py) lists them; docs/adapters.md, "Adding a method".
"""
