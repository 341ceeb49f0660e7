"""loadprobe."""
__all__: list[str] = []
