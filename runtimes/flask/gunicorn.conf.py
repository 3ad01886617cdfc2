"""gunicorn settings of faaso's flask runtime. A funko may ship its own gunicorn.conf.py.

Listens on $PORT (3000), logs errors to the container log, and shuts down well inside faaso's
10 s stop grace period.
"""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '3000')}"
# Workers touch a heartbeat file; the root filesystem is read-only and /tmp may be noexec, so
# use the in-memory /dev/shm that Docker gives every container (gunicorn's own advice).
worker_tmp_dir = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
# Import the app once, in the master: an error in it is printed once and the container exits,
# instead of workers failing to boot one after another.
preload_app = True
# After SIGTERM, how long in-flight requests may still run (faaso kills after 10 s).
graceful_timeout = 5
errorlog = "-"
accesslog = None
