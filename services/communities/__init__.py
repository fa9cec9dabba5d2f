"""The communities service: communities, their members, moderators and bans.

It is also the authority the other services ask before acting in a community
(GetPermissions), and it keeps each community's post count by consuming the
posts service's events.
"""
