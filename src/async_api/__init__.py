"""async-api: an HTTP gateway that turns each request into a durable workflow.

Kept free of imports: the workers import this package too, and must not load Flask
(the gateway's app factory is `async_api.app.create_app`).
"""
