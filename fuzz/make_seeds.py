#!/usr/bin/env python3
"""Seeds every fuzz target with real text from the test fixtures (seeds/, not committed)."""
import pathlib
import re

here = pathlib.Path(__file__).resolve().parent
fixtures = here.parent / "tests" / "fixtures"
seeds = here / "seeds"
files = ["chan_sip.c", "res_pjsip/pjsip_distributor.c", "res_pjsip_session.c",
         "res_pjsip_registrar.c", "res_security_log.c", "manager.c", "chan_iax2.c"]
envelope = re.compile(r"^\[([^\]]+)\] \w+\[\d+\](?:\[[^\]]*\])? ([\w/.]+): (.*)$")


def write(target, name, data):
    d = seeds / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


for log in ["messages.log", "security.log"]:
    lines = (fixtures / "corpus" / log).read_bytes().split(b"\n")
    for i in range(0, len(lines), 12):
        write("log_records", f"{log}-{i}", b"\x40" + b"\n".join(lines[i:i + 12]))
        write("quiet_lines", f"{log}-{i}", b"\n".join(lines[i:i + 12]))
    for i, line in enumerate(lines):
        m = envelope.match(line.decode("utf-8", "replace"))
        if not m:
            continue
        date, file, msg = m.groups()
        write("timestamp", f"{log}-{i % 50}", date.encode())
        if file in files:
            target = "security_event" if file == "res_security_log.c" else "messages_line"
            body = msg.encode() if target == "security_event" else bytes([files.index(file)]) + msg.encode()
            write(target, f"{log}-{i % 400}", body)
ami = (fixtures / "office-day" / "ami-raw.txt").read_bytes().split(b"\r\n\r\n")
for i in range(0, len(ami), 8):
    write("ami_blocks", f"ami-{i}", bytes([i % 64]) + b"\r\n\r\n".join(ami[i:i + 8]) + b"\r\n\r\n")
for conf in (fixtures / "example-acl").iterdir():
    write("asterisk_config", conf.name, conf.read_bytes())
write("config_file", "example.toml", (here.parent / "sipwarden.example.toml").read_bytes())
for text in ["10.0.0.0/8", "192.168.1.7/24", "2001:db8::/32", "fe80::1", "90s", "1h", "7d",
             "security:/var/log/asterisk/security", "messages:/var/log/asterisk/full"]:
    write("config_file", text.replace("/", "_").replace(":", "_"), text.encode())
