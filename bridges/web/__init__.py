"""The browser side of TechAssist: the technician web chat and the dispatcher console."""
