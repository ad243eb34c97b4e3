"""Run an OpenStack CLI's entry point many times, importing it once.

/usr/bin/cinder and /usr/bin/openstack are three lines each: import the
client's `shell.main`, and exit with what it returns. The import
(keystoneauth, osprofiler, oslo.*) costs about 1.4 s of CPU, every call;
the tests make about a hundred calls. This process imports the module once,
then forks one child per call (as a zygote does): the child is a fresh copy
of an interpreter that has just imported the module, exactly the state the
executable reaches before calling `main`. No state of one call survives into
the next (OSC caches its API clients on a class, for one), because each
call is its own process. The child gets the call's argv and environment,
its stdin is /dev/null, its stdout and stderr (the file descriptors, so even
what C code writes) go to files the parent reads after it exits. It ends as
`sys.exit(main())` ends the executable: with the same status, its streams
flushed and its atexit handlers run; but without tearing down every module
and object first, which costs a forked child 0.5 s of CPU (each object it
frees is a page copied from the parent) and shows nothing.

Protocol: one JSON object per line on stdin, {"argv": [...], "env": {...}};
one JSON object per line on fd 3, {"code": n, "out": "...", "err": "..."},
where code is the exit status (negative: killed by that signal).
"""

import atexit
import importlib
import json
import os
import sys
import tempfile

module, prog = sys.argv[1], sys.argv[2]
main = importlib.import_module(module).main
replies = os.fdopen(3, "w", encoding="utf-8")


def child(request, out, err):
    """The executable's life from `main` on, in a forked copy of this process."""
    replies.close()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = [prog] + request["argv"]
    try:
        code = main()
    except SystemExit as e:
        code = e.code
    except BaseException:  # what the interpreter prints for an uncaught exception, and its status
        sys.excepthook(*sys.exc_info())
        code = 1
    if code is not None and not isinstance(code, int):  # sys.exit("message")
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit((code or 0) & 0xFF)


for line in sys.stdin:
    request = json.loads(line)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            child(request, out, err)  # never returns
        _, status = os.waitpid(pid, 0)
        texts = []
        for f in (out, err):
            f.seek(0)
            texts.append(f.read().decode("utf-8", "replace"))
    reply = {"code": os.waitstatus_to_exitcode(status), "out": texts[0], "err": texts[1]}
    replies.write(json.dumps(reply) + "\n")
    replies.flush()
