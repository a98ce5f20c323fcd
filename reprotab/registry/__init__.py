"""The model registry on git tags: versions and stages, the champion pin, the gate that guards
prod, and the `registry` command."""
