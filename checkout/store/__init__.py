"""The commerce core's store: the Valkey key layout, the script loader and its Lua scripts, the command batcher."""
