"""Build tools of the pack: what writes its shipped files (the workflow templates), run by dfr.py."""
