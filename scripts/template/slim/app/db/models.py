"""Every table class, imported once so SQLModel.metadata knows the whole schema (`make domain` adds each)."""

__all__: list[str] = []
