# echo22.py ADDR PORT: the guarded service of test/wine/run.sh. To each
# connection it sends "hello-from-PORT", then "echo:LINE" for each line it
# reads, and closes at the end of its input. A bare connect (nc -z) is fine.
import socket, sys, threading

def serve(c):
    with c:
        try:
            c.sendall(b"hello-from-%s\n" % sys.argv[2].encode())
            f = c.makefile("rb")
            for line in f:
                c.sendall(b"echo:" + line)
        except OSError:
            pass

s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
