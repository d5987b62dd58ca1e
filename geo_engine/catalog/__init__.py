"""The catalogue: organisations, members, projects and contributions, their imports and the
queries of the participatory map, all through the one visibility rule."""
