"""sinterfem: finite elements for the sintering and swelling of silicon anodes on copper foil."""
