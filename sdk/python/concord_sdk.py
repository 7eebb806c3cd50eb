"""Concord operator SDK for Python (standard library only).

An operator is a class with the callbacks below; ``run(operator)`` serves the Concord
operator protocol (docs/operator-protocol.md) on stdin/stdout, so the executor can host
it as a process operator::

    class Upper(concord_sdk.Operator):
        def process_record(self, ctx, record):
            ctx.produce("out", record.key, record.value.upper())

    if __name__ == "__main__":
        concord_sdk.run(Upper())

Callbacks run one at a time. Keys and values are ``bytes``; times are milliseconds since
the Unix epoch.

Tracing needs nothing from the operator: when the executor hands over a record that is
sampled for tracing (``record.trace`` is set), everything ``ctx.produce`` emits while
processing it carries that trace on, so the record's path continues downstream.

Under at-least-once delivery the executor calls ``checkpoint()`` before it acknowledges
the records handed over so far: an operator that writes outside Concord (a sink) makes
that output durable there (flush, fsync) and raises if it could not; the records are
then replayed. The default does nothing.
"""

import json
import struct
import sys

T_INIT, T_RECORD, T_TIMER, T_DESTROY, T_TRACED_RECORD = 1, 2, 3, 4, 5
T_METADATA, T_PRODUCE, T_SET_TIMER, T_LOG, T_ERROR = 16, 17, 18, 19, 20
T_TRACED_PRODUCE = 21
T_CHECKPOINT, T_CHECKPOINTED = 6, 22

# Optional protocol features this SDK implements, announced in the metadata reply.
FEATURES = ["trace", "checkpoint"]

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class Record:
    """An input record. ``trace`` is ``(trace_id, span_id)`` when it is sampled."""

    __slots__ = ("key", "value", "event_time", "trace")

    def __init__(self, key, value, event_time, trace=None):
        self.key = key
        self.value = value
        self.event_time = event_time
        self.trace = trace


class Metadata:
    """Name and stream names of an operator."""

    def __init__(self, name, inputs=("in",), outputs=("out",)):
        self.name = name
        self.inputs = list(inputs)
        self.outputs = list(outputs)


class Context:
    """Output, timers and configuration for the current callback."""

    def __init__(self, config, instance, out):
        self.config = config
        self.instance = instance
        self._out = out
        self.event_time = 0
        # (trace_id, span_id) of the traced record being processed, else None.
        self.trace = None

    def produce(self, stream, key, value, event_time=None):
        """Emit a record on ``stream`` (key/value: bytes or str)."""
        t = self.event_time if event_time is None else event_time
        if self.trace is None:
            self._out.append((T_PRODUCE, stream, _b(key), _b(value), t))
        else:
            self._out.append((T_TRACED_PRODUCE, stream, _b(key), _b(value), t, self.trace))

    def set_timer(self, key, time):
        """Ask for ``process_timer(key, time)`` once the clock reaches ``time`` (ms)."""
        self._out.append((T_SET_TIMER, _b(key), time))

    def log(self, message, level=2):
        """Log through the executor (0 error, 1 warn, 2 info, 3 debug)."""
        self._out.append((T_LOG, level, str(message)))


class Operator:
    """Base class: override what you need."""

    def metadata(self):
        return Metadata(type(self).__name__)

    def init(self, ctx):
        pass

    def destroy(self):
        pass

    def process_record(self, ctx, record):
        raise NotImplementedError

    def process_timer(self, ctx, key, time):
        pass

    def end_of_batch(self, ctx):
        pass

    def checkpoint(self):
        """Make the effects of every record handed over so far durable; raise if not."""
        pass


def _b(x):
    if isinstance(x, bytes):
        return x
    if isinstance(x, (bytearray, memoryview)):
        return bytes(x)
    return str(x).encode("utf-8")


def _read_exact(stream, n):
    buf = b""
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_frame(stream):
    """Read one frame; returns a list of message tuples, or None at end of input."""
    head = _read_exact(stream, 4)
    if head is None:
        return None
    (length,) = _U32.unpack(head)
    body = _read_exact(stream, length)
    if body is None:
        raise EOFError("truncated frame")
    return decode_body(body)


def decode_body(body):
    """Decode a frame body into message tuples."""
    pos = 0

    def u32():
        nonlocal pos
        (v,) = _U32.unpack_from(body, pos)
        pos += 4
        return v

    def u64():
        nonlocal pos
        (v,) = _U64.unpack_from(body, pos)
        pos += 8
        return v

    def blob():
        nonlocal pos
        n = u32()
        v = body[pos:pos + n]
        if len(v) != n:
            raise ValueError("truncated message")
        pos += n
        return v

    msgs = []
    for _ in range(u32()):
        tag = body[pos]
        pos += 1
        if tag == T_INIT:
            msgs.append((T_INIT, blob().decode("utf-8")))
        elif tag == T_RECORD:
            k = blob()
            v = blob()
            msgs.append((T_RECORD, k, v, u64()))
        elif tag == T_TRACED_RECORD:
            k = blob()
            v = blob()
            t = u64()
            msgs.append((T_TRACED_RECORD, k, v, t, (u64(), u64())))
        elif tag == T_TIMER:
            k = blob()
            msgs.append((T_TIMER, k, u64()))
        elif tag == T_DESTROY:
            msgs.append((T_DESTROY,))
        elif tag == T_CHECKPOINT:
            msgs.append((T_CHECKPOINT,))
        else:
            raise ValueError("unexpected message tag %d" % tag)
    return msgs


def encode_frame(msgs):
    """Encode reply message tuples (as produced by Context) into one frame."""
    parts = [_U32.pack(len(msgs))]
    for m in msgs:
        tag = m[0]
        parts.append(bytes((tag,)))
        if tag == T_PRODUCE:
            _, stream, key, value, t = m
            s = stream.encode("utf-8")
            parts += [_U32.pack(len(s)), s, _U32.pack(len(key)), key,
                      _U32.pack(len(value)), value, _U64.pack(t)]
        elif tag == T_TRACED_PRODUCE:
            _, stream, key, value, t, (trace_id, span_id) = m
            s = stream.encode("utf-8")
            parts += [_U32.pack(len(s)), s, _U32.pack(len(key)), key,
                      _U32.pack(len(value)), value, _U64.pack(t),
                      _U64.pack(trace_id), _U64.pack(span_id)]
        elif tag == T_SET_TIMER:
            _, key, t = m
            parts += [_U32.pack(len(key)), key, _U64.pack(t)]
        elif tag == T_LOG:
            _, level, text = m
            s = text.encode("utf-8")
            parts += [bytes((level,)), _U32.pack(len(s)), s]
        elif tag == T_CHECKPOINTED:
            _, ok, text = m
            s = text.encode("utf-8")
            parts += [bytes((1 if ok else 0,)), _U32.pack(len(s)), s]
        elif tag in (T_METADATA, T_ERROR):
            s = m[1].encode("utf-8")
            parts += [_U32.pack(len(s)), s]
        else:
            raise ValueError("cannot encode tag %d" % tag)
    body = b"".join(parts)
    return _U32.pack(len(body)) + body


def run(op, stdin=None, stdout=None):
    """Serve the protocol until Destroy or end of input."""
    stdin = stdin or sys.stdin.buffer
    stdout = stdout or sys.stdout.buffer
    config, instance = {}, 0
    while True:
        msgs = read_frame(stdin)
        if msgs is None:
            return
        out = []
        ctx = Context(config, instance, out)
        stop = False
        checkpoint = False
        for m in msgs:
            tag = m[0]
            try:
                if tag == T_INIT:
                    doc = json.loads(m[1])
                    config = doc.get("config") or {}
                    instance = int(doc.get("instance") or 0)
                    ctx = Context(config, instance, out)
                    md = op.metadata()
                    out.append((T_METADATA, json.dumps(
                        {"name": md.name, "inputs": md.inputs, "outputs": md.outputs,
                         "features": FEATURES})))
                    op.init(ctx)
                elif tag == T_RECORD:
                    ctx.event_time = m[3]
                    op.process_record(ctx, Record(m[1], m[2], m[3]))
                elif tag == T_TRACED_RECORD:
                    ctx.event_time = m[3]
                    ctx.trace = m[4]
                    try:
                        op.process_record(ctx, Record(m[1], m[2], m[3], m[4]))
                    finally:
                        ctx.trace = None
                elif tag == T_TIMER:
                    ctx.event_time = m[2]
                    op.process_timer(ctx, m[1], m[2])
                elif tag == T_DESTROY:
                    op.destroy()
                    stop = True
                elif tag == T_CHECKPOINT:
                    checkpoint = True
                    try:
                        op.checkpoint()
                        out.append((T_CHECKPOINTED, True, ""))
                    except Exception as e:  # the marker fails; records are replayed
                        out.append((T_CHECKPOINTED, False, "%s: %s" % (type(e).__name__, e)))
            except Exception as e:  # reported to the executor, which counts it
                out.append((T_ERROR, "%s: %s" % (type(e).__name__, e)))
        if not stop and not checkpoint:
            try:
                op.end_of_batch(ctx)
            except Exception as e:
                out.append((T_ERROR, "%s: %s" % (type(e).__name__, e)))
        stdout.write(encode_frame(out))
        stdout.flush()
        if stop:
            return
