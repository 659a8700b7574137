#!/usr/bin/env python3
"""The peer of issue 12, side by side: Message DB on PostgreSQL 15 and csctl.

Message DB (https://github.com/message-db/message-db, the npm package
@eventide/message-db 1.3.1, message store version 1.3.0) is an event store
of stored functions over one PostgreSQL table. Both stores get the same
events, on the same machine, in the same run:

- appends: the generated history, durably, in transactions of 1,000
  (`BEGIN; SELECT message_store.write_message(...) x 1000; COMMIT;` through
  psql, synchronous_commit on) against `csctl append` (durable, its default
  batch of 1,000);
- a category: Message DB's `get_category_messages('tokens', 1, N)` in one
  call (its best case: no round trip per batch), printed by psql, against
  `csctl read --category token` (the same events: the streams `tokens-<id>`);
- a stream: `get_stream_messages` of the longest customer stream against
  `csctl read --stream`.

Every time is a whole client process from start to exit (psql connects,
csctl opens its log), output to /dev/null; medians of --repetitions.

    python3 benchmarks/peer/message_db_bench.py [--customers 2350] [--repetitions 5]

Needs build/bin/csctl (bash tools/build.sh), PostgreSQL 15's server binaries
(Debian's postgresql-15, installed with apt when missing and run as root),
npm (to fetch the package) and a `postgres` system user when run as root
(PostgreSQL refuses to run as root). Prints a Markdown table.
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
CSCTL = ROOT / "build" / "bin" / "csctl"
MESSAGE_DB_PACKAGE = "@eventide/message-db@1.3.1"
TRANSACTION_EVENTS = 1000
PG_PORT = 55432


def fail(message):
    print(f"message_db_bench: {message}", file=sys.stderr)
    sys.exit(2)


def run(command, **kwargs):
    return subprocess.run(command, check=True, **kwargs)


def pg_bindir():
    if shutil.which("pg_config") is None and os.geteuid() == 0:
        run(["apt-get", "install", "-y", "-q", "postgresql-15"], stdout=subprocess.DEVNULL)
    if shutil.which("pg_config") is None:
        fail("PostgreSQL's pg_config is not on PATH: install postgresql-15")
    return pathlib.Path(subprocess.check_output(["pg_config", "--bindir"], text=True).strip())


class Postgres:
    """A throwaway cluster on a Unix socket in `work`, run by `postgres` when we are root."""

    def __init__(self, work: pathlib.Path):
        self.bindir = pg_bindir()
        self.data = work / "pg"
        self.socket_dir = work / "socket"
        self.socket_dir.mkdir()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(work, "postgres")
            shutil.chown(self.socket_dir, "postgres")
        run(self.as_user + [str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                            "--no-sync"], stdout=subprocess.DEVNULL)
        run(self.as_user + [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(work / "pg.log"),
                            "-o", f"-k {self.socket_dir} -p {PG_PORT} -c listen_addresses=''", "start"],
            stdout=subprocess.DEVNULL)
        self.env = dict(os.environ, PGHOST=str(self.socket_dir), PGPORT=str(PG_PORT), PGUSER="postgres",
                        PATH=f"{self.bindir}:{os.environ['PATH']}")

    def psql(self, *args, stdout=subprocess.DEVNULL):
        return run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", *args], env=self.env, stdout=stdout)

    def stop(self):
        subprocess.run(self.as_user + [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def install_message_db(pg: Postgres, work: pathlib.Path):
    run(["npm", "pack", "--silent", MESSAGE_DB_PACKAGE], cwd=work, stdout=subprocess.DEVNULL)
    tarball = next(work.glob("eventide-message-db-*.tgz"))
    run(["tar", "xzf", str(tarball)], cwd=work)
    run(["bash", str(work / "package" / "database" / "install.sh")], env=pg.env, stdout=subprocess.DEVNULL)


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def write_sql(events, path: pathlib.Path):
    with path.open("w") as out:
        for start in range(0, len(events), TRANSACTION_EVENTS):
            out.write("BEGIN;\n")
            for e in events[start:start + TRANSACTION_EVENTS]:
                metadata = dict(e.get("meta", {}), timestamp=e["timestamp"])
                out.write("SELECT message_store.write_message(%s, %s, %s, %s, %s);\n" % (
                    sql_literal(e["id"]), sql_literal(e["stream"]), sql_literal(e["type"]),
                    sql_literal(json.dumps(e["data"], separators=(",", ":"))),
                    sql_literal(json.dumps(metadata, separators=(",", ":")))))
            out.write("COMMIT;\n")


def timed(command, env=None, stdin_path=None):
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        start = time.perf_counter()
        done = subprocess.run(command, env=env, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            fail(f"{' '.join(command)} exited {done.returncode}: {done.stderr.decode(errors='replace')[-2000:]}")
        return elapsed
    finally:
        if stdin_path:
            stdin.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2350, help="csctl generate --customers (2350: ~60,000 events)")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--repetitions", type=int, default=5)
    args = parser.parse_args()
    if not CSCTL.exists():
        fail(f"{CSCTL} is missing: run bash tools/build.sh first")
    if shutil.which("npm") is None:
        fail("npm is not on PATH (it fetches the Message DB package)")

    work = pathlib.Path(tempfile.mkdtemp(prefix="message-db-bench."))
    pg = None
    try:
        history = work / "history.jsonl"
        with history.open("wb") as out:
            run([str(CSCTL), "generate", "--customers", str(args.customers), "--seed", str(args.seed)], stdout=out)
        events = [json.loads(line) for line in history.open()]
        token_events = sum(1 for e in events if e["stream"].startswith("tokens-"))
        streams = {}
        for e in events:
            streams[e["stream"]] = streams.get(e["stream"], 0) + 1
        customer_stream = max((s for s in streams if s.startswith("customer-")), key=lambda s: streams[s])
        writes = work / "writes.sql"
        write_sql(events, writes)

        pg = Postgres(work)
        install_message_db(pg, work)
        psql = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "message_store"]
        # As Message DB's clients connect: its role, whose search path finds
        # the store's functions.
        client = dict(pg.env, PGUSER="message_store")

        results = {}
        append_theirs, append_ours = [], []
        for rep in range(args.repetitions):
            pg.psql("message_store", "-c", "TRUNCATE message_store.messages RESTART IDENTITY")
            append_theirs.append(timed(psql + ["-f", str(writes)], env=client))
            log = work / f"log{rep}"
            append_ours.append(timed([str(CSCTL), "append", "--data-dir", str(log)], stdin_path=history))
            if rep + 1 < args.repetitions:
                shutil.rmtree(log)
                (work / f"log{rep}.master-key").unlink()
        results["append"] = (len(events), append_theirs, append_ours)

        log = work / f"log{args.repetitions - 1}"
        check = subprocess.run(psql + ["-c", "SELECT count(*) FROM message_store.get_category_messages('tokens', 1, %d)"
                                       % len(events)], env=client, check=True, capture_output=True, text=True)
        if int(check.stdout.strip()) != token_events:
            fail(f"Message DB holds {check.stdout.strip()} token events, the history {token_events}")
        # What the appends left dirty is written back before the reads
        # (it slowed the first reads of either store by half), and the two
        # stores' reads alternate.
        os.sync()
        # Message DB's category is the stream name's prefix: "tokens" for
        # csctl's category token, "customer" for customer.
        categories = {"tokens": "token", "customer": "customer"}
        reads = {key: ([], []) for key in list(categories) + ["stream"]}
        for _ in range(args.repetitions):
            for theirs, ours in categories.items():
                reads[theirs][0].append(timed(psql + [
                    "-c", "SELECT * FROM message_store.get_category_messages('%s', 1, %d)" % (theirs, len(events))],
                    env=client))
                reads[theirs][1].append(timed([str(CSCTL), "read", "--data-dir", str(log), "--category", ours]))
            reads["stream"][0].append(timed(psql + ["-c", "SELECT * FROM message_store.get_stream_messages(%s)"
                                                    % sql_literal(customer_stream)], env=client))
            reads["stream"][1].append(timed([str(CSCTL), "read", "--data-dir", str(log), "--stream", customer_stream]))
        for theirs in categories:
            count = sum(1 for e in events if e["stream"].split("-", 1)[0] == theirs)
            results["category " + theirs] = (count, *reads[theirs])
        results["stream"] = (streams[customer_stream], *reads["stream"])

        print(f"{len(events)} events (csctl generate --customers {args.customers} --seed {args.seed}), "
              f"medians of {args.repetitions}; Message DB {MESSAGE_DB_PACKAGE} on "
              f"{subprocess.check_output([str(pg.bindir / 'postgres'), '--version'], text=True).strip()}\n")
        print("| path | events | Message DB | csctl | csctl / Message DB |")
        print("|---|---:|---:|---:|---:|")
        labels = {"append": "append, durable, transactions of 1,000",
                  "category tokens": "read a category (tokens / token)",
                  "category customer": "read a category (customer; csctl opens the sealed fields)",
                  "stream": "read one customer stream"}
        for key, (count, theirs, ours) in results.items():
            t, o = statistics.median(theirs), statistics.median(ours)
            print(f"| {labels[key]} | {count:,} | {t * 1000:.1f} ms ({count / t:,.0f}/s) | "
                  f"{o * 1000:.1f} ms ({count / o:,.0f}/s) | **{t / o:.2f}x** |")
    finally:
        if pg:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
