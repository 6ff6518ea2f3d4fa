#!/usr/bin/env python3
"""Sends N records (bench/post.lua's record, a unique event id each) to the collector one
after another on one keep-alive connection; exits 1 unless every answer is 201.

Usage: allocs-client.py HOST PORT N
"""
import http.client
import sys

host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
HEADERS = {
    "Accept": "*/*",
    "record_format_version": "4",
    "classification": "org.clearlinux/bench/wrk",
    "severity": "2",
    "machine_id": "05510b6cfbd41f2f7220d73f24a0a1ea",
    "creation_timestamp": "1795758044",
    "arch": "x86_64",
    "host_type": "Intel Corporation|NUC7i5BNH|J31144-313",
    "build": "31870",
    "kernel_version": "6.18.44-fc-v657",
    "payload_format_version": "1",
    "system_name": "clear-linux-os",
    "board_name": "NUC7i5BNB|Intel Corporation",
    "cpu_model": "Intel(R) Core(TM) i5-7260U CPU @ 2.20GHz",
    "bios_version": "BNKBL357.86A.0062.2018.0222.1644",
    "X-Telemetry-TID": "6907c830-eed9-4ce9-81ae-76daf8d88f0f",
    "Content-Type": "application/text",
}
conn = http.client.HTTPConnection(host, port, timeout=60)
for i in range(n):
    headers = dict(HEADERS, event_id=f"{i:032x}")
    conn.request("POST", "/v2/collector", body=b"bench payload from wrk\n", headers=headers)
    answer = conn.getresponse()
    answer.read()
    if answer.status != 201:
        sys.exit(f"request {i}: {answer.status}")
