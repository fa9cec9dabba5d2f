"""What the harness needs to know about a loaded data set, kept beside the run's files.

Written by the loader, read by the harness: the sizes and seed (so results
name the data set they were measured on), the showcase post, the largest
community and the users the harness may sign in as.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.dataset.generate import Plan, Sizes, username
from tools.stack import RUN_DIR

MANIFEST_DIR = RUN_DIR / "bench"


@dataclass(frozen=True, slots=True)
class Manifest:
    database: str
    scale: float
    seed: int
    sizes: dict[str, int]
    generated_at: str
    showcase_post_id: str
    showcase_comments: int
    largest_community: str
    load_usernames: list[str]
    password: str
    load_seconds: float

    @classmethod
    def of(
        cls, plan: Plan, *, database: str, scale: float, password: str, load_seconds: float
    ) -> Manifest:
        from bench.dataset.generate import timestamp

        return cls(
            database=database,
            scale=scale,
            seed=plan.seed,
            sizes=asdict(plan.sizes),
            generated_at=timestamp(plan.now),
            showcase_post_id=plan.post_ids[plan.showcase_post],
            showcase_comments=plan.post_comments[plan.showcase_post],
            largest_community=plan.community_names[0],
            load_usernames=[username(i) for i in plan.load_users],
            password=password,
            load_seconds=round(load_seconds, 1),
        )

    @property
    def dataset_sizes(self) -> Sizes:
        return Sizes(**self.sizes)

    @staticmethod
    def path(database: str) -> Path:
        return MANIFEST_DIR / f"{database}.json"

    def save(self) -> Path:
        target = self.path(self.database)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return target

    @classmethod
    def read(cls, database: str) -> Manifest:
        path = cls.path(database)
        if not path.exists():
            raise FileNotFoundError(
                f"no data set loaded into {database} (run: python -m bench.dataset --db {database})"
            )
        return cls(**json.loads(path.read_text()))
