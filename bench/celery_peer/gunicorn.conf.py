"""gunicorn for the peer's web app: the same shape as the gateway's (2 gthread workers x 4)."""

workers = 2
worker_class = "gthread"
threads = 4
timeout = 30
graceful_timeout = 2
control_socket_disable = True
