"""TechAssist core: the conversation, plans, sessions and tools, free of any transport."""
