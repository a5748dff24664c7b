"""The peer the benchmark compares against: Flask + Celery + Redis, with this service's HTTP
contract and the settings a careful Celery user picks for reliability.

    POST /begin?id=ID  -> 202 {"promise": ID, "status": "pending", "wait": "/wait?id=ID"}
    GET  /wait?id=ID   -> {"status": "pending"|"resolved"|"rejected", "promise_id", "result"}

The job `foo` does what this service's `foo` does: one row in a sqlite ledger (WAL, one
connection per row, as workers/ledger.py does) and the same result.

Reliability settings (bench/stacks.py starts the processes):
- Redis (broker and result backend) with `appendonly yes`, `appendfsync everysec`: an
  accepted job survives a Redis restart, give or take the last second. RDB snapshots are off
  (`save ""`): the AOF is the persistence.
- `task_acks_late` + `task_reject_on_worker_lost`: a job is taken off the queue only once it
  ran, and a worker killed mid-job gives it back (re-delivered after the broker's
  `visibility_timeout`, 1 h by default).
- `worker_prefetch_multiplier = 1`, prefork pool with concurrency 1: a worker reserves one job
  at a time, like this service's one worker process.
- The result backend is Redis too; results expire after `result_expires` (1 day by default,
  this service's job timeout).
- Duplicates: /begin first does `SET peer:job:ID <hash of the body> NX EX 86400`; only the
  request that set it calls `apply_async(task_id=ID)`. The same id with another body is a 409,
  the same body gets the job's state. A crash between the SET and `apply_async` leaves an id
  that never runs (a Celery user needs an outbox to close that gap; this service's single
  durable create has none).
- The web side runs under gunicorn with 2 gthread workers x 4 threads, as the gateway does.

Settings come from the environment: REDIS_URL (a password, if any, goes there) and
PEER_LEDGER_PATH.
"""
