"""Running a prepared job: the coordinator, the executors, the worker, progress, retry, report."""
