"""Says hello from an instance that sleeps when nobody calls. Watch it: `faaso status hello-idle`."""

import os


def handle(request):
    return f"Hello from {os.environ.get('HOSTNAME', 'an instance')}, awake again!\n"
