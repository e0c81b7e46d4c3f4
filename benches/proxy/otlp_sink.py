"""A stand-in OTLP/HTTP collector for benches/proxy/run.sh: answers every POST with 200 and an empty
protobuf body, GET with 200, and keeps a running count of batches and bytes received in COUNT_FILE.

Usage: python3 otlp_sink.py PORT COUNT_FILE  (binds 127.0.0.1:PORT; stops on SIGTERM)
"""
import http.server
import signal
import sys
import threading


class Sink(http.server.BaseHTTPRequestHandler):
    batches = 0
    received = 0
    lock = threading.Lock()
    count_file = ""

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        with Sink.lock:
            Sink.batches += 1
            Sink.received += length
            with open(Sink.count_file, "w") as f:
                f.write(f"{Sink.batches} batches, {Sink.received} bytes")
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self):
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    port, Sink.count_file = int(sys.argv[1]), sys.argv[2]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Sink)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()


if __name__ == "__main__":
    main()
