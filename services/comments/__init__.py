"""The comments service: comment trees under posts, their moderation, search and vote tallies.

Trees are stored as an adjacency list with a materialised path, depth and
reply counters, and read one page of top-level comments at a time with their
replies (domain.py has the rules, repository.py the queries).
"""
