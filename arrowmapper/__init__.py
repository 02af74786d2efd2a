"""arrowmapper: copy the result of a SQL query into a table in parallel chunks, exactly once.

import arrowmapper as am
result = am.map_query("postgresql://u@h/src", "SELECT * FROM events",
                      "postgresql://u@h/dst", "events_copy", key="id", workers=4)
print(result.summary())
"""

from __future__ import annotations

from .api import TablesResult, VerifyReport, map_query, map_tables, plan_query, plan_tables, verify
from .compat import (
    ChunkConfig,
    ChunkingStrategy,
    ParallelProcessingResult,
    ParallelProcessor,
    ProgressTracker,
    RetryHandler,
    create_progress_callback,
    create_retry_handler,
    execute_query_parallel,
)
from .config import RetryConfig
from .config.files import files
from .errors import (
    ArrowMapperError,
    ChunkFailed,
    ConfigError,
    JobFailed,
    PlanError,
    SourceError,
    TargetError,
)
from .plan import Chunk, Plan
from .run.progress import ChunkState, ProgressSnapshot
from .run.report import ChunkResult, JobResult

__version__ = "0.1.0"

__all__ = [
    "ArrowMapperError",
    "Chunk",
    "ChunkConfig",
    "ChunkFailed",
    "ChunkResult",
    "ChunkState",
    "ChunkingStrategy",
    "ConfigError",
    "JobFailed",
    "JobResult",
    "ParallelProcessingResult",
    "ParallelProcessor",
    "Plan",
    "PlanError",
    "ProgressSnapshot",
    "ProgressTracker",
    "RetryConfig",
    "RetryHandler",
    "SourceError",
    "TablesResult",
    "TargetError",
    "VerifyReport",
    "create_progress_callback",
    "create_retry_handler",
    "execute_query_parallel",
    "files",
    "map_query",
    "map_tables",
    "plan_query",
    "plan_tables",
    "verify",
]
