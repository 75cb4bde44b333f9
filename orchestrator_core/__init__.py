"""TechAssist core: the conversation state machine, plans, sessions and tools, free of any transport."""
