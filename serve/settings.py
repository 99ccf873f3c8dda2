"""The serving worker model, in one place: ``mnist-serve`` starts gunicorn with these, and the
Azure deployment (``submit/endpoint.py``) declares the matching ``request_settings`` from them,
so the two cannot drift. Pure constants: importing this module imports nothing heavy.

Why a threaded worker. The inference server (azureml-inference-server-http 1.5.1,
``amlserver_linux.py``) builds gunicorn's command line itself with ``-w N --timeout T`` and no
worker class, so gunicorn's default *sync* worker answers one connection at a time: one client
that sends its headers a byte every two seconds holds the whole server (310 s in a slow-client
probe). ``GUNICORN_CMD_ARGS`` is read by gunicorn under the server's own arguments, so
``mnist-serve`` chooses the worker there. gunicorn 27.0.1's ``gthread`` worker keeps a connection
whose first byte has not arrived in its poller (``workers/gthread.py``,
``DEFAULT_WORKER_DATA_TIMEOUT``), but a connection that has sent one byte holds a thread until
its request is complete; so a worker holds at most ``THREADS_PER_WORKER - 1`` trickling clients
and still answers others. Measured in that probe (gunicorn 27.0.1, a trivial app, this 2-core
machine): 4 threads starved every ordinary request under 8 slow clients, 16 threads held them at
1-2 ms. gevent held 64 at 1-3 ms, but it is one more compiled dependency in the serving image and
monkey-patches the threads TensorFlow and onnxruntime run their work on; the tests measure the
threaded worker with 8 slow clients (``tests/serve/test_slow_clients.py``).
"""

from __future__ import annotations

# One worker process: each holds its own copy of the model and of TensorFlow's or onnxruntime's
# thread pools, which already use both cores of the 2-core machine for one batch. More workers
# buy memory, not throughput, here; WORKER_COUNT / --workers raises it on larger instances.
WORKERS = 1

# Threads per worker: the most connections one worker serves at once, slow ones included
# (see the module docstring). 32 is twice the 16 measured to hold 8 slow clients: threads cost
# about 8 MiB of virtual (not resident) stack each, and a model call holds the GIL only between
# its C++ kernels, so idle threads cost nothing.
THREADS_PER_WORKER = 32

# What Azure's front end may send one instance at once (the deployment's
# request_settings.max_concurrent_requests_per_instance; Azure's default is 1, and the next
# request then gets a 429). Every thread can take one request.
MAX_CONCURRENT_REQUESTS = WORKERS * THREADS_PER_WORKER

# A request's bound, in seconds: Azure's front end answers 408 after
# request_settings.request_timeout_ms (its default is 5 s). Inside the server nothing else can
# stop a running request once it runs on a thread: the server's own scoring timeout
# (SCORING_TIMEOUT_MS) uses SIGALRM, which it skips off the main thread
# (server/utils.py, timeout_supported), and gunicorn's --timeout only restarts a worker whose
# main loop stops (the gthread main loop keeps beating while a thread works). What bounds a
# request here is its size, checked before any work: 16 MiB, 1,024 images, a PNG's pixels from
# its header (serve/decode.py, serve/images.py). The largest allowed request takes well under a
# second on the 2-core machine (docs/serving.md); 10 s leaves room for a slow upload.
REQUEST_TIMEOUT_S = 10

# How long gunicorn waits, after SIGTERM, for requests in flight before it ends the worker.
# gunicorn's default is 30 s, but a trickling client never finishes its request, so a stop
# with one connected took the whole 30 s; docker stop sends SIGKILL after 10 s, and Azure
# stops instances on scale-in and redeploy. 5 s finishes any allowed request in flight.
GRACEFUL_TIMEOUT_S = 5

# How long an idle kept-alive connection stays open (gunicorn's default is 2 s).
KEEPALIVE_S = 2

# gunicorn's arguments for this worker model, appended to GUNICORN_CMD_ARGS by mnist-serve.
# --no-control-socket: gunicorn 25.1 and later open a control socket in $HOME/.gunicorn, a side
# effect a model server does not need and a read-only home refuses.
GUNICORN_ARGS = (
    "--worker-class gthread",
    f"--threads {THREADS_PER_WORKER}",
    f"--graceful-timeout {GRACEFUL_TIMEOUT_S}",
    f"--keep-alive {KEEPALIVE_S}",
    "--no-control-socket",
)
