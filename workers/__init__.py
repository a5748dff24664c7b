"""The worker package: `python -m workers --group G` runs the durable functions of group G."""
