"""The commented example config that `sipwatch sensor --example-config` prints.

Parsing it must give exactly the default SensorConfig (tests check that).
"""

EXAMPLE_CONFIG = """\
# sipwatch sensor configuration (TOML).  Run:  sipwatch sensor --config sensor.toml
# Every key is shown with its default value; a key you leave out keeps its default.
# Check a config without starting anything:  sipwatch sensor --check-config --config FILE
# Relative paths are relative to the folder the sensor is started in.

[sensor]
# Sensor name, stored with every message (default: this machine's host name).
# name = "honeypot-1"
# Trace store: a SQLite file (created when missing) or an sqlite:/// URL.
store = "sipwatch.sqlite"
# Dialling region for national numbers in dialled INVITEs (ISO 3166 code such as "DE");
# "" = only international numbers (00..., +...) are classified by country.
region = ""
# Seconds between two lines of counters (received, answered, rate-limited, parse errors).
log_interval = 60
# Safety: started as root to bind port 5060, the sensor switches to this user (and group;
# "" = the user's primary group) right after binding. "" = keep running as the starting
# user. Running a honeypot as root is not recommended: use e.g. user = "nobody".
user = ""
group = ""
# Folder for a rotating pcap of every message received and sent (open it in Wireshark);
# "" = no pcap. Messages are written as IP/UDP and IP/TCP packets; TLS traffic is written
# decrypted, as plain TCP to the TLS port (in Wireshark: Decode As... SIP on that port).
pcap_dir = ""
# Start a new pcap file when the current one is larger than this many MiB ...
pcap_rotate_mb = 100
# ... and keep at most this many files (the oldest sipwatch files are deleted).
pcap_keep = 10
# Prometheus metrics (requests by method/stage/node, events by rule, drops, spool depth) at
# http://ADDRESS:PORT/metrics, e.g. "127.0.0.1:9460"; "" = off. It has no login: keep it on
# loopback or a management network.
metrics = ""
# Central sensor approach (docs/central-sensor.md): the node inventory (TOML). Each message is
# attributed to the node whose central tunnel address it arrived on; messages to other
# addresses keep an empty node (the sensor itself). "" = no inventory.
nodes = ""

# Listeners: one [[listen]] table per transport, address and port. transport is "udp",
# "tcp" or "tls"; address an IPv4 or IPv6 address ("0.0.0.0" / "::" = all addresses);
# port defaults to 5060 (udp, tcp) and 5061 (tls). The default listens on loopback only:
# use "0.0.0.0" (and "::") to face the Internet. Replies leave from the address hit.
[[listen]]
transport = "udp"
address = "127.0.0.1"
port = 5060

[[listen]]
transport = "tcp"
address = "127.0.0.1"
port = 5060

# [[listen]]
# transport = "tls"
# address = "127.0.0.1"
# port = 5061

[tls]
# PEM certificate and private key for the tls listeners. Both "" = a self-signed
# certificate is generated once and kept in "sipwatch-tls/" next to the store.
cert = ""
key = ""

[personality]
# Which PBX the sensor pretends to be: a built-in name (asterisk, freeswitch, kamailio, or
# a phone-like device) or the path of a personality TOML file. It sets the Server /
# User-Agent, Allow and Supported headers and how calls are answered.
name = "asterisk"
# Digest realm in challenges; "" = the personality's own.
realm = ""

[accounts]
# Extensions that exist (REGISTER / INVITE get 401/407 challenges; others get 404):
# single extensions and LOW-HIGH ranges, e.g. ["100-199", 1000, "2000-2099"].
extensions = ["100-199"]

# Passwords of the accounts attackers may "crack"; extensions without a password exist
# but every guess fails (403). Weak passwords let an attacker register and then show the
# numbers it wants to call. When you write an [accounts] section, only the passwords
# listed here exist (the demo passwords below are not added).
[accounts.passwords]
100 = "100"
101 = "1234"
102 = "Qv7-nM2p-Xr9w-Lt4k"

[auth]
# Digest algorithms offered in challenges: "MD5" and/or "SHA-256" (one challenge each).
algorithms = ["MD5"]
# Seconds a nonce stays valid; an older one gets a fresh challenge (stale=true).
nonce_ttl = 300

[safety]
# Replies per second per source address (token bucket) and the burst allowed above it.
# Requests over the limit are recorded but not answered, and counted.
reply_rate = 20
reply_burst = 40
# Source addresses tracked at once for rate limiting (least recently seen forgotten first).
max_sources = 100000
# A UDP reply is never larger than this many times the request it answers, so the sensor
# cannot be used to amplify a spoofed-source attack. May be lowered, never above 3.
amplification_factor = 3
# Registrations remembered at once ("registered" sources), least recent forgotten first.
max_registrations = 100000

[tcp]
# Seconds an idle TCP/TLS connection is kept open.
idle_timeout = 60
# Open TCP/TLS connections at once, in total and per source address.
max_connections = 1024
max_per_source = 16
# Bytes buffered per connection for an unfinished message; a larger message closes it.
max_buffer = 65536

[passwords]
# Password insight: each digest attempt is tested against the configured passwords and a
# wordlist of common SIP passwords, to record which password was tried.
# A file with one password per line; "" = the built-in list.
wordlist = ""
# At most this many candidates are tested per attempt (0 = only the configured passwords).
max_candidates = 1000

[detection]
# The real-time analyzer: rule packs over every message (docs/rules.md) and attack chains
# (docs/detection.md). Its events go to the store and to the [actions] below.
enabled = true
# Extra rule packs (YAML files) loaded after the built-in default pack.
rules = []
# Source addresses the analyzer keeps state for (rule tables, attack chains, stage labels;
# least recently seen dropped first, counted): what bounds memory under a flood from many
# (spoofed) addresses: about 2.7 KB per address (16384 keeps it to ~45 MB).
max_sources = 262144
# Per-rule changes, e.g. a stricter extension-scan threshold:
#   [detection.overrides."es.extension-scan"]
#   threshold = 5
[detection.overrides]
# Named lists of numbers (E.164) that rules can watch, e.g. your own premium numbers:
#   fraud = ["+88213", "+4590"]
[detection.watchlists]

[central]
# Report to a central service (docs/central.md). url "" = this sensor stands alone.
# Records and events are spooled to disk first and delivered exactly once, in order, when the
# central is reachable; the command line's --central URL --token TOKEN set the same.
url = ""
# The sensor's token from `sipwatch sensors add NAME`; or token_file = a file holding it.
token = ""
token_file = ""
# PEM bundle that signs the central's certificate ("" = the system's CA store).
ca = ""
# Spool folder ("" = sipwatch-spool next to the store) and its size limit; batches that do
# not fit are dropped, counted and reported to the central.
spool_dir = ""
spool_max_mb = 1024
# A batch is sealed every batch_records records or batch_seconds, whichever comes first.
batch_records = 5000
batch_seconds = 1.0
heartbeat_seconds = 10.0

[capture]
# Passive sensor: capture live traffic on an interface (libpcap) and analyse every SIP message
# seen, decoded like capture files (VLANs, IP fragments, TCP streams, VXLAN/GRE tunnels).
# "" = no live capture; "any" = every interface. Needs root (or CAP_NET_RAW). docs/passive.md
interface = ""
# BPF filter, e.g. "port 5060 or port 5061"; "" = every packet (SIP is found on any port).
filter = ""
# Put the interface in promiscuous mode (see traffic not addressed to this host: mirror ports).
promiscuous = false
# Bytes kept of each packet, and the kernel capture buffer in MiB (bursts wait there).
snaplen = 262144
buffer_mb = 32
# Also write the captured frames to rotating pcap files in this folder ("" = do not), a new
# file every pcap_rotate_mb MiB, keeping the newest pcap_keep files.
pcap_dir = ""
pcap_rotate_mb = 100
pcap_keep = 10

[hep]
# HEP collector: receive copies of SIP messages (HEP v1/v2/v3) from Kamailio siptrace,
# OpenSIPS, FreeSWITCH, Asterisk res_hep, heplify or captagent, over UDP and TCP on each
# "ADDRESS:PORT", e.g. ["0.0.0.0:9060"]. [] = no collector. docs/passive.md
listen = []
# Packets must carry this key (the agents' capture password); "" = no key needed.
auth_key = ""
# Open TCP connections from capture agents at once.
max_connections = 256
# Node of each capture agent, by agent id or node name (default: the node name it sends,
# else its agent id), e.g. nodes = { 2001 = "berlin", "edge-7" = "paris" }
nodes = {}

# Where detection events go (docs/actions.md); nothing is configured by default.
# [actions.jsonl]
# path = "events.jsonl"
# [actions.syslog]
# [actions.webhook]
# url = "https://siem.example/hook"
# [actions.hep]                       # every message as HEP v3 to a HOMER (docs/passive.md)
# address = "192.0.2.10:9060"
# [actions.blocklist]
# min_severity = "high"
# nftables = { create = true }
# allowlist = ["192.0.2.0/24"]
[actions]
"""
