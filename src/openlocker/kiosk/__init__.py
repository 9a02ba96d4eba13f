"""The locker-side agent: drives the lock boards, verifies codes locally, syncs with the server.

It imports ``core`` and the pure parts of ``access`` and nothing else of the server.
"""
