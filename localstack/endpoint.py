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

moto checks a received SQS message's retention by computing every queue
attribute, three of which scan the whole queue: a receive from a queue of N
messages cost O(N) per message returned. The launcher reads the retention
period from the queue itself (same result). A send computed the same
attributes to read one of them (ContentBasedDeduplication): while a
SendMessage or SendMessageBatch runs, the three counts answer 0 without
walking the queue, so a send costs the same at any queue depth. moto's
clock, unix_time(), builds
two datetimes per call and SQS calls it twice per queued message whenever it
counts messages (on every send, too); the launcher answers it from
time.time() (same value). GetRecords answers are written with json.dumps
instead of moto's shape-driven serializer (a sixth of the endpoint's time
under load); their records are DynamoDB JSON already.

A ReceiveMessage long poll whose client went away (a poller stopped, a
request cancelled) goes on in moto until its wait time ends, and takes
the messages that arrive meanwhile: they stay invisible for the queue's
visibility timeout with nobody to process them. The launcher ends such a
poll, without taking anything, when it sees the client's connection closed.

Two lookups moto repeats on every request are made once: the list of its
service modules (a directory listing) and the action names of a handler
class (inspect.getmembers); together a sixth of a PutItem's time.

SQS records every message's sender as its SenderId system attribute (an
IAM user's unique id, an assumed role's "AROA...:session"); moto gives every
message one fixed SenderId, so senders could not be told apart. The launcher
records the principal of the access key that signed the SendMessage or
SendMessageBatch request: moto's own answer for keys its IAM or STS issued,
and for any other key the access key id itself, so distinct local keys are
distinct senders. GetCallerIdentity answers the same principal as UserId,
as on AWS, where a role session's UserId is the SenderId of what it sends.

Request lines are not logged (werkzeug logs each one, a sixth of the
endpoint's time under load); --log-requests turns them on. With the
environment variable KNHK_ENDPOINT_STATS set to a file name, the endpoint
writes there, every 5 s and at exit, each operation's count and seconds,
and under "SQS queue scans" how many times a queue's messages were walked
(count) and the messages visited ("messages"). With KNHK_ENDPOINT_REQUESTS
set to a file name, the endpoint appends there one JSON line per request that
carries a W3C traceparent header (an instrumented client's call): its
operation, signing access key, trace and parent span ids, HTTP status and,
for DynamoDB, the capacity its response reported, so that what a traced case
made the endpoint do can be counted on the endpoint's side.

CloudWatch alarms: moto stores composite alarms (an alarm with a rule) but
has no PutCompositeAlarm, and keeps no history it can answer. The launcher
adds PutCompositeAlarm (rule, description and actions stored) and
DescribeAlarmHistory, answering a StateUpdate item in CloudWatch's shape for
every change of an alarm's state; every new alarm starts in
INSUFFICIENT_DATA, as on AWS, and a replaced one keeps its history. Alarms are not evaluated here: the local stack's evaluator does that
and sets their state through SetAlarmState.

GetMetricStatistics: moto starts a response's buckets at the first datapoint
in the range, so a datapoint early in a minute, after one late in the
previous minute, was filed under the previous minute. The launcher buckets
as CloudWatch does: from StartTime rounded down to the minute (to the period
below a minute), in steps of Period. moto also walked every datapoint ever
put on each request; the launcher keeps them indexed by namespace and metric
name, so a request costs the size of that one metric's series.

X-Ray GetTraceSummaries: moto refuses every FilterExpression. The launcher
answers the one form KNHK uses, annotation.KEY = "VALUE" (traces with a
segment or subsegment annotated so); any other expression is refused as
before. moto answers a summary's Users as an object, which the SDKs cannot
read; it is answered as the list X-Ray's API declares.
"""

import argparse
import atexit
import datetime
import functools
import inspect
import json
import os
import re
import select
import signal
import socket
import sys
import threading
import time
import types

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
import moto.backends
import moto.core.responses
import moto.core.utils
import moto.dynamodb.models
import moto.sqs.models
import moto.sts.models
from moto.cloudwatch.exceptions import InvalidParameterValue
from moto.cloudwatch.models import Alarm, CloudWatchBackend, Statistics
from moto.cloudwatch.responses import CloudWatchResponse
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.dynamodb.models.table import Table
from moto.iam.models import get_account_id_from
from moto.sqs.models import Message, Queue, SQSBackend
from moto.xray.models import SegmentCollection
from moto.sts.models import STSBackend
from werkzeug.exceptions import ClientDisconnected
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


def fast_clock(unix_time):
    """unix_time() answered by time.time() when it is asked for now."""

    def clock(dt=None):
        return time.time() if dt is None else unix_time(dt)

    return clock


def epoch_seconds(value):
    """JSON for the datetimes of stream records: epoch seconds."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.timestamp()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def get_records(self):
    """DynamoDB Streams GetRecords, serialized with json.dumps."""
    limit = self._get_param("Limit") or 1000
    result = self.backend.get_records(self._get_param("ShardIterator"), limit)
    return json.dumps(result, default=epoch_seconds)


REQUEST = threading.local()


def peer_closed(sock):
    """Whether the peer of a request's socket closed it (the request was
    read in full, so a readable socket is at its end or broken)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):
        return True


def watched(wait_for_messages):
    """Queue.wait_for_messages that ends the poll of a departed client."""

    def client_present():
        sock = getattr(REQUEST, "socket", None)
        if sock is not None and peer_closed(sock):
            raise ClientDisconnected("ReceiveMessage client closed its connection")

    def wait(self, timeout):
        client_present()
        wait_for_messages(self, timeout)
        client_present()

    return wait


def retained(self, queue_name, message):
    """Whether a message is within its queue's retention period."""
    queue = self.get_queue(queue_name)
    return message.sent_timestamp / 1000 + int(queue.message_retention_period) > time.time()


# moto's GetCallerIdentity UserId for a key neither its IAM nor STS issued.
MOTO_DEFAULT_USER_ID = "AKIAIOSFODNN7EXAMPLE"


def own_identity(get_caller_identity):
    """STSBackend.get_caller_identity naming a key moto did not issue by
    the key the request was signed with (moto reads only keys of 20
    capitals and digits from a request)."""

    def wrapped(self, access_key_id, region):
        user_id, arn, account = get_caller_identity(self, access_key_id, region)
        signed = getattr(REQUEST, "access_key", None) or access_key_id
        if user_id == MOTO_DEFAULT_USER_ID and signed:
            user_id = signed
        return user_id, arn, account

    return wrapped


def principal(key):
    """The UserId GetCallerIdentity answers for an access key."""
    backend = moto.sts.models.sts_backends[get_account_id_from(key)]["aws"]
    return backend.get_caller_identity(key, "us-east-1")[0]


def access_key(environ):
    """The access key id a SigV4-signed request names, or None."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if "Credential=" not in auth:
        return None
    return auth.split("Credential=", 1)[1].split("/", 1)[0] or None


def sender_recorded(init):
    """Message.__init__ recording the sending request's principal."""

    def wrapped(self, *args, **kwargs):
        init(self, *args, **kwargs)
        key = getattr(REQUEST, "access_key", None)
        if key:
            self.sender_id = principal(key)

    return wrapped


SENDING = threading.local()

QUEUE_COUNTS = (
    "approximate_number_of_messages",
    "approximate_number_of_messages_delayed",
    "approximate_number_of_messages_not_visible",
)


def sending(send):
    """SQSBackend.send_message(_batch) with the queue's message counts off."""

    def wrapped(self, *args, **kwargs):
        before = getattr(SENDING, "active", False)
        SENDING.active = True
        try:
            return send(self, *args, **kwargs)
        finally:
            SENDING.active = before

    return wrapped


def uncounted_while_sending(count):
    """A Queue message count that a send does not compute: a send reads
    the queue's attributes only for ContentBasedDeduplication."""

    def get(self):
        return 0 if getattr(SENDING, "active", False) else count.fget(self)

    return property(get)


def scan_counted(prop, stats):
    """A Queue property that walks the queue, counted in the stats."""

    def get(self):
        stats.scanned(len(self._messages))
        return prop.fget(self)

    return property(get)


class QuietRequestHandler(MotoRequestHandler):
    """moto's request handler without a log line per request."""

    def log_request(self, code="-", size="-"):
        pass


class Stats:
    """Per-operation request counts and seconds, written to a JSON file."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.ops = {}
        self.written = time.monotonic()

    def add(self, op, seconds):
        with self.lock:
            entry = self.ops.setdefault(op, {"count": 0, "seconds": 0.0})
            entry["count"] += 1
            entry["seconds"] += seconds
            due = time.monotonic() - self.written > 5
        if due:
            self.write()

    def scanned(self, messages):
        with self.lock:
            entry = self.ops.setdefault("SQS queue scans", {"count": 0, "seconds": 0.0, "messages": 0})
            entry["count"] += 1
            entry["messages"] += messages

    def write(self):
        with self.lock:
            self.written = time.monotonic()
            body = json.dumps(self.ops, indent=1, sort_keys=True)
        with open(self.path, "w") as f:
            f.write(body)


class RequestLog:
    """One JSON line per traced request, appended to a file (buffered,
    written at least every second and at exit)."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.lines = []
        self.written = time.monotonic()
        open(path, "a").close()
        threading.Thread(target=self.flusher, daemon=True).start()

    def flusher(self):
        while True:
            time.sleep(1)
            self.write()

    def add(self, environ, status, body):
        parent = environ.get("HTTP_TRACEPARENT", "").split("-")
        if len(parent) != 4:
            return
        op = operation(environ)
        entry = {"op": op, "key": access_key(environ) or "", "trace": parent[1], "span": parent[2], "status": status}
        if op.startswith("DynamoDB_") and status == 200:
            table, units = consumed(body)
            if table is not None:
                entry["table"], entry["units"] = table, units
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self.lock:
            self.lines.append(line)
            due = time.monotonic() - self.written > 1
        if due:
            self.write()

    def write(self):
        with self.lock:
            lines, self.lines = self.lines, []
            self.written = time.monotonic()
            if lines:
                with open(self.path, "a") as f:
                    f.write("".join(lines))


def consumed(body):
    """The table and capacity units a DynamoDB response reports
    (ConsumedCapacity, one entry or a list), or (None, 0)."""
    try:
        cc = json.loads(b"".join(body) or b"{}").get("ConsumedCapacity")
    except (ValueError, AttributeError):
        return None, 0
    if isinstance(cc, dict):
        cc = [cc]
    if not cc:
        return None, 0
    return cc[0].get("TableName", ""), sum(c.get("CapacityUnits", 0) for c in cc)


def operation(environ):
    """The operation a request names: its X-Amz-Target, else the service
    of its credential scope and its Action parameter or path."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return target
    scope = environ.get("HTTP_AUTHORIZATION", "").split("Credential=")[-1].split("/")
    service = scope[3] if len(scope) > 3 else "unknown"
    return service + " " + environ.get("PATH_INFO", "")


class SerializedDynamoDB:
    """WSGI middleware running DynamoDB (not Streams) requests under one
    lock, showing a ReceiveMessage long poll its client's socket and every
    request its signing key, and timing every request when stats are
    kept."""

    def __init__(self, app, stats=None, requests=None):
        self.app = app
        self.lock = threading.Lock()
        self.stats = stats
        self.requests = requests

    def __call__(self, environ, start_response):
        logged = self.requests is not None and "HTTP_TRACEPARENT" in environ
        if self.stats is None and not logged:
            return self.serve(environ, start_response)
        status = []

        def started(code, headers, *args):
            status.append(int(code.split(" ", 1)[0]))
            return start_response(code, headers, *args)

        begin = time.perf_counter()
        body = list(self.serve(environ, started if logged else start_response))
        if self.stats is not None:
            self.stats.add(operation(environ), time.perf_counter() - begin)
        if logged:
            self.requests.add(environ, status[0] if status else 0, body)
        return body

    def serve(self, environ, start_response):
        REQUEST.access_key = access_key(environ)
        try:
            return self.route(environ, start_response)
        finally:
            REQUEST.access_key = None

    def route(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target in ("AmazonSQS.SendMessage", "AmazonSQS.SendMessageBatch"):
            return list(self.app(environ, start_response))
        if target == "AmazonSQS.ReceiveMessage":
            REQUEST.socket = environ.get("werkzeug.socket")
            try:
                return list(self.app(environ, start_response))
            finally:
                REQUEST.socket = None
        if target.startswith("DynamoDB_"):
            with self.lock:
                # Drain the response inside the lock: the write happens while
                # the body is produced.
                return list(self.app(environ, start_response))
        return self.app(environ, start_response)


def put_composite_alarm(self):
    """CloudWatch PutCompositeAlarm on moto's alarm store."""
    p = self._get_param
    alarm = self.cloudwatch_backend.put_metric_alarm(
        name=p("AlarmName"), namespace=None, metric_name=None, comparison_operator=None,
        evaluation_periods=None, period=None, threshold=None, statistic=None,
        description=p("AlarmDescription"), dimensions=[], alarm_actions=p("AlarmActions", []),
        ok_actions=p("OKActions", []), insufficient_data_actions=p("InsufficientDataActions", []),
        actions_enabled=p("ActionsEnabled"), rule=p("AlarmRule"), tags=p("Tags", []),
    )
    alarm.alarm_rule = alarm.rule
    return moto.core.responses.EmptyResult()


def history_kept(put_metric_alarm):
    """Wrap CloudWatchBackend.put_metric_alarm: a new alarm starts in
    INSUFFICIENT_DATA, as on AWS; a replaced one keeps its history."""

    def wrapped(self, name, *args, **kwargs):
        old = self.alarms.get(name)
        alarm = put_metric_alarm(self, name, *args, **kwargs)
        alarm.state_value = "INSUFFICIENT_DATA"
        if old is not None:
            alarm.state_history = old.__dict__.get("state_history", [])
        return alarm

    return wrapped


def state_recorded(update_state):
    """Wrap Alarm.update_state to keep a StateUpdate history item per change."""

    def wrapped(self, reason, reason_data, state_value):
        old = self.state_value
        update_state(self, reason, reason_data, state_value)
        if old == state_value:
            return
        data = {
            "version": "1.0",
            "oldState": {"stateValue": old},
            "newState": {"stateValue": state_value, "stateReason": reason},
        }
        if reason_data:
            data["newState"]["stateReasonData"] = json.loads(reason_data)
        self.__dict__.setdefault("state_history", []).append({
            "AlarmName": self.name,
            "AlarmType": "CompositeAlarm" if self.rule else "MetricAlarm",
            "Timestamp": self.state_updated_timestamp,
            "HistoryItemType": "StateUpdate",
            "HistorySummary": f"Alarm updated from {old} to {state_value}",
            "HistoryData": json.dumps(data),
        })

    return wrapped


def describe_alarm_history(self):
    """CloudWatch DescribeAlarmHistory over the recorded StateUpdate items,
    newest first unless ScanBy is TimestampAscending."""
    p = self._get_param
    name, kind = p("AlarmName"), p("HistoryItemType")
    start, end = p("StartDate"), p("EndDate")
    items = [
        item
        for alarm in self.cloudwatch_backend.alarms.values()
        if name in (None, alarm.name)
        for item in alarm.__dict__.get("state_history", [])
        if kind in (None, item["HistoryItemType"])
        and (start is None or item["Timestamp"] >= start)
        and (end is None or item["Timestamp"] <= end)
    ]
    items.sort(key=lambda i: i["Timestamp"], reverse=p("ScanBy") != "TimestampAscending")
    return moto.core.responses.ActionResult({"AlarmHistoryItems": items[: p("MaxRecords") or 100]})


SERIES_LOCK = threading.Lock()


def series(backend, namespace, name):
    """The datapoints put on one metric, from an index kept beside moto's
    list of every datapoint (extended as that list grows, rebuilt if it was
    replaced); for AWS/ namespaces also the services' own metrics."""
    data = backend.metric_data
    with SERIES_LOCK:
        index = backend.__dict__.get("knhk_series")
        if index is None or index["data"] is not data or index["seen"] > len(data):
            index = {"data": data, "seen": 0, "by": {}}
            backend.knhk_series = index
        upto = len(data)
        for datum in data[index["seen"]:upto]:
            index["by"].setdefault((datum.namespace, datum.name), []).append(datum)
        index["seen"] = upto
        found = list(index["by"].get((namespace, name), ()))
    if namespace.startswith("AWS/"):
        found += [d for d in backend.aws_metric_data if d.namespace == namespace and d.name == name]
    return found


def get_metric_statistics(self, namespace, metric_name, start_time, end_time, period, stats, dimensions, unit=None):
    """CloudWatchBackend.get_metric_statistics with CloudWatch's buckets:
    StartTime rounded down to the minute (to the period, below a minute),
    then one bucket per Period; only buckets holding data are answered."""
    start = start_time.replace(microsecond=0)
    end = end_time.replace(microsecond=0)
    if start >= end:
        raise InvalidParameterValue("The parameter StartTime must be less than the parameter EndTime.")
    period = int(period)
    grain = min(period, 60)
    start = start.replace(second=start.second - start.second % grain)
    buckets = {}
    for datum in series(self, namespace, metric_name):
        if not start <= datum.timestamp < end:
            continue
        if unit and datum.unit != unit:
            continue
        if dimensions and not datum.filter(None, None, dimensions):
            continue
        i = int((datum.timestamp - start).total_seconds()) // period
        bucket = buckets.get(i)
        if bucket is None:
            bucket = buckets[i] = Statistics(stats, start + datetime.timedelta(seconds=i * period))
        bucket.metric_data.append(datum)
        bucket.unit = datum.unit
    return [buckets[i] for i in sorted(buckets)]


ANNOTATION_FILTER = re.compile(r'^\s*annotation\.([A-Za-z0-9_]+)\s*=\s*"((?:[^"\\]|\\.)*)"\s*$')


def annotated(segments, key, value):
    """Whether a segment, or a subsegment at any depth, carries the
    annotation key = value."""
    docs = [{"annotations": s.annotations, "subsegments": s.subsegments} for s in segments]
    while docs:
        doc = docs.pop()
        if (doc.get("annotations") or {}).get(key) == value:
            return True
        docs.extend(doc.get("subsegments") or [])
    return False


def trace_summaries(summary):
    """Wrap SegmentCollection.summary to answer annotation.KEY = "VALUE"."""

    def wrapped(self, start_time, end_time, filter_expression=None):
        match = None
        if filter_expression is not None:
            match = ANNOTATION_FILTER.match(filter_expression)
            if match is None:
                return summary(self, start_time, end_time, filter_expression)
        result = summary(self, start_time, end_time)
        if match is not None:
            key, value = match.group(1), re.sub(r"\\(.)", r"\1", match.group(2))
            result["TraceSummaries"] = [s for s in result["TraceSummaries"]
                                        if annotated(self._traces[s["Id"]]["segments"], key, value)]
            result["TracesProcessedCount"] = len(result["TraceSummaries"])
        for s in result["TraceSummaries"]:
            s["Users"] = list(s.get("Users") or [])
        return result

    return wrapped


def patch_moto(stats=None):
    """Apply the changes the module docstring lists; with stats, count the
    walks of a queue's messages."""
    Table.query = partition_query(Table.query)
    if stats is not None:
        for name in QUEUE_COUNTS + ("messages",):
            setattr(Queue, name, scan_counted(getattr(Queue, name), stats))
    for name in QUEUE_COUNTS:
        setattr(Queue, name, uncounted_while_sending(getattr(Queue, name)))
    SQSBackend.send_message = sending(SQSBackend.send_message)
    SQSBackend.send_message_batch = sending(SQSBackend.send_message_batch)
    SQSBackend.is_message_valid_based_on_retention_period = retained
    Queue.wait_for_messages = watched(Queue.wait_for_messages)
    Message.__init__ = sender_recorded(Message.__init__)
    STSBackend.get_caller_identity = own_identity(STSBackend.get_caller_identity)
    DynamoDBStreamsHandler.get_records = get_records
    CloudWatchResponse.put_composite_alarm = put_composite_alarm
    CloudWatchResponse.describe_alarm_history = describe_alarm_history
    Alarm.update_state = state_recorded(Alarm.update_state)
    CloudWatchBackend.put_metric_alarm = history_kept(CloudWatchBackend.put_metric_alarm)
    CloudWatchBackend.get_metric_statistics = get_metric_statistics
    SegmentCollection.summary = trace_summaries(SegmentCollection.summary)
    modules = tuple(moto.backends.list_of_moto_modules())
    moto.backends.list_of_moto_modules = lambda: modules
    moto.core.responses.method_names_from_class = functools.cache(moto.core.responses.method_names_from_class)
    clock = fast_clock(moto.core.utils.unix_time)
    for module in (moto.core.utils, moto.sqs.models, moto.dynamodb.models):
        if isinstance(getattr(module, "unix_time", None), types.FunctionType):
            module.unix_time = clock


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=4566)
    parser.add_argument("--log-requests", action="store_true", help="log a line per request")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    stats = None
    if os.environ.get("KNHK_ENDPOINT_STATS"):
        stats = Stats(os.environ["KNHK_ENDPOINT_STATS"])
        atexit.register(stats.write)
    requests = None
    if os.environ.get("KNHK_ENDPOINT_REQUESTS"):
        requests = RequestLog(os.environ["KNHK_ENDPOINT_REQUESTS"])
        atexit.register(requests.write)
    patch_moto(stats)
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        SerializedDynamoDB(app, stats, requests),
        threaded=True,
        request_handler=MotoRequestHandler if args.log_requests else QuietRequestHandler,
    )


if __name__ == "__main__":
    main()
