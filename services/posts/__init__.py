"""The posts service: posts, their listings and post search.

Vote tallies and comment counts are copies kept current from the votes and
comments events; communities answers who may post and moderate where.
"""
