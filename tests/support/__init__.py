"""What the tests stand on, one module per job:

- processes.py   start, watch and kill a child process; free ports; wait_until
- servers.py     the Resonate server and a private PostgreSQL cluster, as processes
- stack.py       Stack: one Resonate server with its workers and gunicorn gateways
- http.py        what a test asks a stack's gateway (and its server); Client, a retrying client
- ledger.py      what a test counts in a stack's effects ledger (real step executions)
- make_run.py    `make run`, the README's run command, on free ports in a temp dir
- slow_clients.py slowloris connections, and how long a probe waits for its answer
- in_process.py  the gateway app in the test's own process, for request validation (no engine)
"""
