#!/usr/bin/env python3
"""Seeds every fuzz target with real text from the test fixtures (seeds/, not committed)."""
import pathlib
import re

here = pathlib.Path(__file__).resolve().parent
fixtures = here.parent / "tests" / "fixtures"
seeds = here / "seeds"
# The message table (src/asterisk/shapes.rs): its files, in the order of
# messages::FILES, and its annotated sample lines.
shapes = (here.parent / "src" / "asterisk" / "shapes.rs").read_text()
consts = dict(re.findall(r'^const (\w+): &str = "([^"]*)";', shapes, re.M))
consts["super::dialplan::FILE"] = re.search(
    r'^pub const FILE: &str = "([^"]*)";', (here.parent / "src" / "asterisk" / "dialplan.rs").read_text(),
    re.M).group(1)
consts["DIALPLAN_FILE"] = re.search(r'^pub const DIALPLAN_FILE: &str = "([^"]*)";', shapes, re.M).group(1)
files = []
for name in re.findall(r'^        file: ([^,]+),$', shapes, re.M):
    file = consts.get(name) or name.strip('"')
    if file not in files:
        files.append(file)
samples = re.findall(r'line: r#"(.*)"#,$', shapes, re.M)
assert len(files) >= 9 and len(samples) >= 14, (files, len(samples))
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
for i, line in enumerate(samples):
    write("log_records", f"sample-{i}", b"\x40" + line.encode())
    m = envelope.match(line)
    # A dialplan Log() line names "Ext." and the extension instead of a file.
    file, msg = m.groups()[1:] if m else ("Ext.", line.split(" Ext. ", 1)[1])
    target = "security_event" if file == "res_security_log.c" else "messages_line"
    body = msg.encode() if target == "security_event" else bytes([files.index(file)]) + msg.encode()
    write(target, f"sample-{i}", body)
ami = (fixtures / "office-day" / "ami-raw.txt").read_bytes().split(b"\r\n\r\n")
for i in range(0, len(ami), 8):
    write("ami_blocks", f"ami-{i}", bytes([i % 64]) + b"\r\n\r\n".join(ami[i:i + 8]) + b"\r\n\r\n")
for conf in (fixtures / "example-acl").iterdir():
    write("asterisk_config", conf.name, conf.read_bytes())
write("config_file", "example.toml", (here.parent / "sipwarden.example.toml").read_bytes())
for text in ["10.0.0.0/8", "192.168.1.7/24", "2001:db8::/32", "fe80::1", "90s", "1h", "7d",
             "security:/var/log/asterisk/security", "messages:/var/log/asterisk/full"]:
    write("config_file", text.replace("/", "_").replace(":", "_"), text.encode())
