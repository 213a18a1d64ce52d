"""The embedded local AWS endpoint: moto's server application, with DynamoDB
requests serialized so that a conditional write is atomic, as it is on AWS.

moto evaluates a ConditionExpression and then writes without holding a lock
across both steps, so two concurrent conditional PutItem calls on one key can
both succeed. KNHK's receipt chain relies on exactly that condition; this
launcher runs DynamoDB requests one at a time and every other service
concurrently (long-polling SQS receives must not block the rest).

moto also answers a Query by sorting every item of the table, so a case's
chain read costs O(table size). The launcher narrows a base-table Query to
the partition it names; moto's own filtering and sorting then run as before,
so results are unchanged (the serialized requests keep this safe).
"""

import argparse
import inspect
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.dynamodb.models.table import Table
from werkzeug.serving import run_simple


def partition_query(query):
    """Wrap Table.query so a base-table query looks at one partition only."""
    signature = inspect.signature(query)

    def wrapped(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        hash_key = bound.arguments.get("hash_key")
        if bound.arguments.get("index_name") or not self.range_key_attr or hash_key is None:
            return query(self, *args, **kwargs)
        partition = list(self.items.get(hash_key, {}).values())
        self.all_items = lambda: partition
        try:
            return query(self, *args, **kwargs)
        finally:
            del self.all_items

    return wrapped


class SerializedDynamoDB:
    """WSGI middleware running DynamoDB (not Streams) requests under one lock."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB_"):
            with self.lock:
                # Drain the response inside the lock: the write happens while
                # the body is produced.
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=4566)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    Table.query = partition_query(Table.query)
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        SerializedDynamoDB(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
