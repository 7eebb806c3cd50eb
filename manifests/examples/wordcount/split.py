#!/usr/bin/env python3
"""Word-count example, stage 2: split each line into words.

Input: a record whose value is a line of text. Output on stream "out": one record per
word, keyed by the lower-cased word, so that the next stage (key partitioning) counts
each word on exactly one instance.

Config: ``minLength`` (ignore shorter words, default 1) and ``chunk`` (cut words longer
than this many letters into pieces of that size; 0, the default, keeps words whole). The
example topology feeds synthetic lines of random letters and sets ``chunk`` so that they
yield a spread of short "words".
"""

import re

import concord_sdk

WORD = re.compile(r"[A-Za-z']+")


class Split(concord_sdk.Operator):
    def __init__(self):
        self.min_length = 1
        self.chunk = 0

    def metadata(self):
        return concord_sdk.Metadata("split", inputs=["lines"], outputs=["out"])

    def init(self, ctx):
        self.min_length = int(ctx.config.get("minLength", 1))
        self.chunk = int(ctx.config.get("chunk", 0))
        ctx.log("split ready (instance %d)" % ctx.instance)

    def process_record(self, ctx, record):
        text = record.value.decode("utf-8", "replace") if isinstance(record.value, bytes) else str(record.value)
        for word in WORD.findall(text):
            pieces = [word]
            if self.chunk > 0 and len(word) > self.chunk:
                pieces = [word[i:i + self.chunk] for i in range(0, len(word), self.chunk)]
            for piece in pieces:
                if len(piece) >= self.min_length:
                    w = piece.lower()
                    ctx.produce("out", w, w)


if __name__ == "__main__":
    concord_sdk.run(Split())
