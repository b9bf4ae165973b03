"""Live streams: the lifecycle table and the store whose changes are one script each."""
