#!/usr/bin/env python3
"""Prints the latest benchmark figures from bench-results/*.json as markdown tables, ready to
paste into docs/benchmarks.md. Usage: tests/bench/summary.py <results-dir>"""
import json
import os
import sys

results = sys.argv[1] if len(sys.argv) > 1 else "bench-results"


def load(name):
    path = os.path.join(results, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError:
            return None


def ms(h, key):
    return "–" if not h or not h.get("count") else f"{h[key]:.2f}"


print("## Latest figures\n")
machine = os.path.join(results, "machine.txt")
if os.path.exists(machine):
    print("```")
    print(open(machine).read().strip())
    print("```\n")

idle = load("idle")
if idle:
    print("### 1. Idle capacity\n")
    print("| connections | live | connect s | server RSS MiB | bytes/conn | send→ack p50 / p99 ms |"
          " send→deliver p50 / p99 / p99.9 ms |")
    print("|---|---|---|---|---|---|---|")
    for s in idle["steps"]:
        a, d = s["send_to_ack"], s["send_to_deliver"]
        print(f"| {s['connections']} | {s['live']} | {s['connect_seconds']:.1f} | "
              f"{s['server_rss_kib'] / 1024:.0f} | {s['bytes_per_connection']:.0f} | "
              f"{ms(a, 'p50_ms')} / {ms(a, 'p99_ms')} | "
              f"{ms(d, 'p50_ms')} / {ms(d, 'p99_ms')} / {ms(d, 'p999_ms')} |")
    r = idle.get("summary", {})
    if r:
        print(f"\nRound trip, largest vs smallest step: send→ack p50 ×{r.get('ack_p50_ratio')}, "
              f"p99 ×{r.get('ack_p99_ratio')}; send→deliver p50 ×{r.get('deliver_p50_ratio')}, "
              f"p99 ×{r.get('deliver_p99_ratio')} (target ≤ ×1.5).\n")


def rate_table(title, data, unit):
    if not data:
        return
    print(f"### {title}\n")
    print(f"| step | offered/s | acked/s | delivered/s | server CPU % | send→ack p50 / p99 ms |"
          f" send→deliver p50 / p99 / p99.9 / max ms | errors | dup | missing |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s in data["steps"]:
        a, d = s["send_to_ack"], s["send_to_deliver"]
        print(f"| {s['label']} | {s['offered_per_second']} | {s['acked_per_second']:.0f} | "
              f"{s['delivered_per_second']:.0f} | {s['server_cpu_percent']:.0f} | "
              f"{ms(a, 'p50_ms')} / {ms(a, 'p99_ms')} | {ms(d, 'p50_ms')} / {ms(d, 'p99_ms')} / "
              f"{ms(d, 'p999_ms')} / {ms(d, 'max_ms')} | {s['errors']} | {s['duplicates']} | "
              f"{s['missing']} |")
    summary = data.get("summary", {})
    print(f"\nPeak: {summary.get('peak_acked_per_second')} {unit}, "
          f"{summary.get('peak_delivered_per_second')} deliveries/s.\n")


rate_table("2. Direct messages (1,000 users online, 100-byte bodies)", load("direct"),
           "acked messages/s")
rate_table("Baseline: WebSocket echo, same frames and users", load("echo"), "echoes/s")
rate_table("3. Group fan-out (one group of 1,000 members)", load("group"), "acked messages/s")

direct, echo, sqlite = load("direct"), load("echo"), load("sqlite-ceiling")
print("### Ratios\n")
peak = direct and direct["summary"].get("peak_acked_per_second")
if peak and echo and echo["summary"].get("peak_acked_per_second"):
    e = echo["summary"]["peak_acked_per_second"]
    print(f"- Ferry direct peak {peak:.0f}/s is {100 * peak / e:.1f} % of the echo ceiling "
          f"({e:.0f}/s; the load generator shares the two cores).")
if sqlite:
    single, batched = sqlite["per_message_commit_per_second"], sqlite["batched_commit_per_second"]
    print(f"- Raw SQLite, same rows and durability: {single:.0f}/s with a commit per message, "
          f"{batched:.0f}/s with a commit per {sqlite['batch']}.")
    if peak:
        print(f"- Ferry direct peak is {100 * peak / single:.0f} % of the per-message-commit "
              f"ceiling and {100 * peak / batched:.1f} % of the batched one.")
group = load("group")
if group:
    print(f"- Group fan-out peak: {group['summary'].get('peak_delivered_per_second')} deliveries/s "
          f"(target 200,000/s).")
print()
