#!/usr/bin/env python3
"""Click-fraud example, stage 1: parse and enrich.

Input: one JSON click per record, e.g. {"ip": "10.0.0.7", "adId": "ad-3",
"publisher": "pub-0", "url": "/ad/3", "userAgent": "Mozilla/5.0", "ts": 1700000000000}.
Output on stream "out": the click with every input field passed through (``publisher``,
the owner of the ad, is what the per-publisher counts group by; ``"unknown"`` when a
click lacks it) and added fields ``adId`` (from the URL when missing), ``isBot`` (user
agent looks like a crawler), ``subnet`` (the /24 of the IP) and ``enrichedBy``, keyed
by the IP so that the next stage can count clicks per IP. Unparseable clicks are counted
and dropped.

Config: ``botPatterns`` (list of substrings, default ["bot", "crawler", "spider"]).
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import concord_sdk  # noqa: E402


class Enrich(concord_sdk.Operator):
    def __init__(self):
        self.bad = 0
        self.patterns = []

    def metadata(self):
        return concord_sdk.Metadata("enrich", inputs=["clicks"], outputs=["out"])

    def init(self, ctx):
        self.patterns = [p.lower() for p in ctx.config.get(
            "botPatterns", ["bot", "crawler", "spider"])]
        ctx.log("enrich ready (instance %d)" % ctx.instance)

    def process_record(self, ctx, record):
        try:
            click = json.loads(record.value)
            ip = str(click["ip"])
        except (ValueError, KeyError, TypeError):
            self.bad += 1
            return
        ua = str(click.get("userAgent", "")).lower()
        click["isBot"] = any(p in ua for p in self.patterns)
        click["subnet"] = ".".join(ip.split(".")[:3]) + ".0/24"
        if "adId" not in click and "url" in click:
            click["adId"] = "ad-" + str(click["url"]).rstrip("/").rsplit("/", 1)[-1]
        click["publisher"] = str(click.get("publisher") or "unknown")
        click["enrichedBy"] = "enrich.py"
        ctx.produce("out", ip, json.dumps(click, separators=(",", ":")))

    def destroy(self):
        sys.stderr.write("enrich: destroyed (%d unparseable clicks)\n" % self.bad)


if __name__ == "__main__":
    concord_sdk.run(Enrich())
