"""Check that a loaded benchmark database keeps every invariant the services rely on.

Each check is one query that counts violations (0 is a pass). They read
across schemas, as the admin role: only the benchmark does that, to prove
the copies each service keeps agree with the rows they summarise. The
harness runs the vote checks again after the vote scenario, to show the
tallies are still exact under load.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.settings import DatabaseSettings
from tools import bootstrap

# name -> a query returning the number of violations.
DATASET_CHECKS: dict[str, str] = {
    "community member_count = memberships": """
        SELECT count(*) FROM communities.communities c
        WHERE c.member_count <> (SELECT count(*) FROM communities.memberships m
                                 WHERE m.community_id = c.id)""",
    "community post_count = posts": """
        SELECT count(*) FROM communities.communities c
        WHERE c.post_count <> (SELECT count(*) FROM posts.posts p WHERE p.community_id = c.id)""",
    "every community creator is a member and moderator": """
        SELECT count(*) FROM communities.communities c
        WHERE NOT EXISTS (SELECT 1 FROM communities.moderators m
                          WHERE m.community_id = c.id AND m.user_id = c.creator_id)
           OR NOT EXISTS (SELECT 1 FROM communities.memberships m
                          WHERE m.community_id = c.id AND m.user_id = c.creator_id)""",
    "post comment_count = visible comments = post_counters": """
        SELECT count(*) FROM posts.posts p
        LEFT JOIN (SELECT post_id, count(*) AS n FROM comments.comments
                   WHERE deleted_at IS NULL AND removed_at IS NULL GROUP BY post_id) c
               ON c.post_id = p.id
        LEFT JOIN comments.post_counters pc ON pc.post_id = p.id
        WHERE p.comment_count <> coalesce(c.n, 0)
           OR coalesce(pc.comment_count, 0) <> p.comment_count""",
    "comment child_count = replies": """
        SELECT count(*) FROM comments.comments c
        LEFT JOIN (SELECT parent_id, count(*) AS n FROM comments.comments
                   WHERE parent_id IS NOT NULL GROUP BY parent_id) r ON r.parent_id = c.id
        WHERE c.child_count <> coalesce(r.n, 0)""",
    "comment depth and path agree with the parent": """
        SELECT count(*) FROM comments.comments c
        LEFT JOIN comments.comments p ON p.id = c.parent_id
        WHERE length(c.path) <> 8 * (c.depth + 1)
           OR (p.id IS NULL) <> (c.parent_id IS NULL)
           OR (p.id IS NOT NULL AND (left(c.path, length(p.path)) <> p.path
                                     OR c.depth <> p.depth + 1 OR p.post_id <> c.post_id))""",
    "comment descendant_count = subtree (1% sample)": """
        SELECT count(*) FROM comments.comments c TABLESAMPLE SYSTEM (1)
        WHERE c.descendant_count <> (SELECT count(*) FROM comments.comments d
                                     WHERE d.post_id = c.post_id
                                       AND d.path > c.path AND d.path < c.path || '~')""",
    # The generator numbers segments 1..n, one per comment: the next nextval must be past n.
    "comment path sequence is past every segment": """
        SELECT CASE WHEN (SELECT last_value FROM comments.comment_path_seq)
                         >= (SELECT count(*) FROM comments.comments) THEN 0 ELSE 1 END""",
    "no self-votes": """
        SELECT (SELECT count(*) FROM votes.votes v JOIN posts.posts p ON p.id = v.target_id
                WHERE v.target_type = 1 AND v.user_id = p.author_id)
             + (SELECT count(*) FROM votes.votes v JOIN comments.comments c ON c.id = v.target_id
                WHERE v.target_type = 2 AND v.user_id = c.author_id)""",
}

VOTE_CHECKS: dict[str, str] = {
    "tallies = votes rows": """
        SELECT count(*) FROM votes.tallies t
        FULL JOIN (SELECT target_type, target_id,
                          count(*) FILTER (WHERE direction = 1) AS up,
                          count(*) FILTER (WHERE direction = -1) AS down
                   FROM votes.votes GROUP BY target_type, target_id) v
               ON v.target_type = t.target_type AND v.target_id = t.target_id
        WHERE coalesce(t.upvotes, 0) <> coalesce(v.up, 0)
           OR coalesce(t.downvotes, 0) <> coalesce(v.down, 0)
           OR coalesce(t.score, 0) <> coalesce(v.up, 0) - coalesce(v.down, 0)""",
    "post copies = tallies": """
        SELECT count(*) FROM posts.posts p
        LEFT JOIN votes.tallies t ON t.target_type = 1 AND t.target_id = p.id
        WHERE (p.score, p.upvotes, p.downvotes, p.tally_version)
           <> (coalesce(t.score, 0), coalesce(t.upvotes, 0), coalesce(t.downvotes, 0),
               coalesce(t.version, 0))""",
    "comment copies = tallies": """
        SELECT count(*) FROM comments.comments c
        LEFT JOIN votes.tallies t ON t.target_type = 2 AND t.target_id = c.id
        WHERE (c.score, c.upvotes, c.downvotes, c.tally_version)
           <> (coalesce(t.score, 0), coalesce(t.upvotes, 0), coalesce(t.downvotes, 0),
               coalesce(t.version, 0))""",
}


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    violations: int

    @property
    def ok(self) -> bool:
        return self.violations == 0


def run_checks(settings: DatabaseSettings, checks: dict[str, str]) -> list[CheckResult]:
    results = []
    with bootstrap._admin_connect(settings, settings.name) as conn:
        for name, query in checks.items():
            row = conn.execute(query).fetchone()
            value = row[0] if row else None
            results.append(CheckResult(name, value if isinstance(value, int) else -1))
    return results
