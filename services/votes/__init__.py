"""The votes service: each user's vote on posts and comments, and the authoritative tallies.

Posts and comments keep copies of the tallies for their listings, fed by the
vote_cast events this service publishes through its outbox.
"""
