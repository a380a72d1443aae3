"""One module per platform, each declaring everything about it as ``PLATFORM`` (``service.sources.platform``).

A module here is a platform: ``service.sources.platform.names()`` lists the files, nothing else does.
"""
