"""Platform sources: one module per platform behind ``service.sources.base.Source``."""
